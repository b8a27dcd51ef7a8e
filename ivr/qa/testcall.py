"""The test-call format (DESIGN.md): a folder with ``call.yaml`` and its turn audio.

Errors name the file and the turn (``calls/x/call.yaml: turn #3: ...``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from ivr.channels.scripted import Turn, TurnKind
from ivr.errors import AudioError, ConfigError
from ivr.speech.audio import read_audio

OUTCOMES: Final = ("resolved", "transferred", "abandoned", "failed")
TURN_KEYS: Final = {"audio", "dtmf", "silence", "hangup", "say"}
# ask: informational, which ask it answers; private: a recorded answer to a code's ask whose
# audio was not kept (replayed as the silence it holds; `ivr qa promote` fills it in)
OPTIONS: Final = {"text", "barge_in_ms", "ask", "private"}
EXPECT_KEYS: Final = {
    "outcome",
    "transfer_reason",
    "ticket_team",
    "feedback_category",
    "said",
    "states",
}


@dataclass
class Expect:
    outcome: str | None = None
    transfer_reason: str | None = None
    ticket_team: str | None = None
    feedback_category: str | None = None
    said: list[str] = field(default_factory=list)  # phrases the IVR must have spoken
    states: list[str] = field(default_factory=list)  # states the call must pass, in order
    has: set[str] = field(default_factory=set)  # which keys were written in the file


@dataclass
class TestCall:
    name: str
    path: Path
    locale: str
    caller_id: str | None
    dialed: str | None
    fixtures: dict[str, Any]
    turns: list[Turn]
    expect: Expect


def find_calls(paths: list[Path]) -> list[Path]:
    """Every call.yaml under the given files or folders, in a stable order."""
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            found.append(p)
        elif (p / "call.yaml").is_file():
            found.append(p / "call.yaml")
        elif p.is_dir():
            found.extend(sorted(p.rglob("call.yaml")))
        else:
            raise ConfigError(f"no test call at {p}")
    return found


def load_call(path: Path, *, synthesize: bool = True, condition: str = "clean") -> TestCall:
    """Load one test call; ``say:`` turns (text) are synthesised with the caller voice.

    ``condition`` (ivr.qa.conditions) renders every caller turn as a clean voice, on a
    phone line, or slow in noise.
    """
    path = path / "call.yaml" if path.is_dir() else path
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at top level")
    locale = str(data.get("locale", "en-US"))
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise ConfigError(f"{where}: expected a non-empty list of turns")
    turns = [_turn(t, i, path, locale, synthesize, condition) for i, t in enumerate(raw_turns, 1)]
    raw_expect = data.get("expect") or {}
    if not isinstance(raw_expect, dict):
        raise ConfigError(f"{where}: expect: expected a mapping")
    outcome = raw_expect.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ConfigError(f"{where}: expect.outcome: expected one of {OUTCOMES}, got {outcome!r}")
    expect = Expect(
        outcome=outcome,
        transfer_reason=raw_expect.get("transfer_reason"),
        ticket_team=raw_expect.get("ticket_team"),
        feedback_category=raw_expect.get("feedback_category"),
        said=_texts(raw_expect.get("said"), f"{where}: expect.said"),
        states=_texts(raw_expect.get("states"), f"{where}: expect.states"),
        has=set(raw_expect),
    )
    unknown = set(raw_expect) - EXPECT_KEYS
    if unknown:
        raise ConfigError(f"{where}: expect: unknown keys {sorted(unknown)}")
    caller = data.get("caller_id")
    fixtures = data.get("fixtures") or {}
    if not isinstance(fixtures, dict):
        raise ConfigError(f"{where}: fixtures: expected a mapping")
    return TestCall(
        name=str(data.get("name", path.parent.name)),
        path=path,
        locale=locale,
        caller_id=None if caller is None else str(caller),
        dialed=None if data.get("dialed") is None else str(data["dialed"]),
        fixtures=fixtures,
        turns=turns,
        expect=expect,
    )


def _turn(raw: Any, index: int, path: Path, locale: str, synthesize: bool, condition: str) -> Turn:
    where = f"{path}: turn #{index}"
    if not isinstance(raw, dict) or len(set(raw) & TURN_KEYS) != 1:
        raise ConfigError(f"{where}: expected exactly one of {sorted(TURN_KEYS)}, got {raw!r}")
    unknown = set(raw) - TURN_KEYS - OPTIONS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    barge = raw.get("barge_in_ms")
    if barge is not None and (not isinstance(barge, int) or barge < 0):
        raise ConfigError(f"{where}: barge_in_ms: expected milliseconds >= 0, got {barge!r}")
    turn = _turn_body(raw, where, path, locale, synthesize, condition)
    return dataclasses.replace(turn, barge_in_ms=barge)


def _turn_body(
    raw: dict[str, Any], where: str, path: Path, locale: str, synthesize: bool, condition: str
) -> Turn:
    if "audio" in raw:
        file = (path.parent / str(raw["audio"])).resolve()
        try:
            audio = read_audio(file)
        except AudioError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if len(audio.samples) == 0:
            raise ConfigError(f"{where}: {file} holds no audio")
        if condition != "clean":
            from ivr.qa.conditions import Condition, degrade

            audio = degrade(audio, Condition(condition), key=f"{file.name}")
        return Turn(TurnKind.AUDIO, audio=audio, where=where, text=str(raw.get("text", "")))
    if "say" in raw:
        text = str(raw["say"])
        if not synthesize:
            return Turn(TurnKind.AUDIO, where=where, text=text)
        from ivr.qa.synth import condition_speech

        audio = condition_speech(text, locale=locale, condition=condition)
        return Turn(TurnKind.AUDIO, audio=audio, where=where, text=text)
    if "dtmf" in raw:
        keys = str(raw["dtmf"])
        if not keys or any(k not in "0123456789*#" for k in keys):
            raise ConfigError(f"{where}: dtmf: expected keys 0-9, * and #, got {keys!r}")
        return Turn(TurnKind.DTMF, keys=keys, where=where)
    if "silence" in raw:
        return Turn(TurnKind.SILENCE, where=where)
    return Turn(TurnKind.HANGUP, where=where)


def _texts(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(f"{where}: expected a list of texts")
    return list(raw)
