"""``ivr qa promote``: a recorded call becomes a test call folder, ready to edit.

The raw material is the call's record in the database (path, outcome, reason, ticket team,
masked turns) and the folder ``ivr serve --record`` wrote for it (the caller's audio per
turn, keys, hang-up). Sensitive values never reach the test call in clear: every code and
full number (a run of six digits or more, the rule the transcripts use) is replaced by a
stand-in of the same length, the same stand-in everywhere it occurs (caller ID, keys,
fixtures), so the promoted call replays the same way. A spoken code cannot be rewritten
inside its audio: such a turn becomes the synthetic caller saying the stand-in. An answer
spoken while a code was asked or read back was never kept (``private: speech`` in the tape):
it becomes the synthetic caller saying the stand-in (the code) or what the recogniser heard
(the read-back's yes or no).
"""

from __future__ import annotations

import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from ivr.datafiles import read_yaml
from ivr.errors import ConfigError
from ivr.services.calls import CallRecord, load_call
from ivr.services.store import Store

SENSITIVE_DIGITS: Final = re.compile(r"\d{6,}")
KEPT_PHONE_DIGITS: Final = 4  # a phone number's last four digits are shown anyway (masking)
MASK: Final = "*"
TAIL_KEYS: Final = re.compile(r"\*\d+#?")  # * and the last digits, keyed at a read-back
HEADER: Final = (
    "# promoted by `ivr qa promote` from call {call_id}; edit freely.\n"
    "# Codes and full numbers are stand-ins (the same stand-in wherever a value recurs).\n"
)


@dataclass
class StandIns:
    """Clear sensitive value -> its stand-in, consistent within one promoted call."""

    mapping: dict[str, str] = field(default_factory=dict)

    def value(self, clear: str) -> str:
        if clear not in self.mapping:
            self.mapping[clear] = _fresh(clear, set(self.mapping.values()))
        return self.mapping[clear]

    def text(self, text: str) -> str:
        """``text`` with every run of six or more digits replaced by its stand-in."""
        return SENSITIVE_DIGITS.sub(lambda m: self.value(m.group(0)), text)


def _fresh(clear: str, taken: set[str]) -> str:
    keep = clear[-KEPT_PHONE_DIGITS:] if len(clear) > 6 else ""
    while True:
        head = "".join(secrets.choice("0123456789") for _ in range(len(clear) - len(keep)))
        if len(clear) > 6:
            head = clear[0] + head[1:]  # a plausible number: same country/trunk prefix
        candidate = head + keep
        if candidate != clear and candidate not in taken:
            return candidate


def promote(
    store: Store,
    call_id: str,
    *,
    recordings: Path,
    out: Path,
    fixtures: Path | None = None,
) -> Path:
    """Write the test call folder ``out`` for the recorded call; returns its ``call.yaml``."""
    record = load_call(store, call_id)
    if record is None:
        raise ConfigError(f"no call {call_id!r} in the database")
    tape_file = recordings / record.id / "call.yaml"
    if not tape_file.is_file():
        raise ConfigError(
            f"no recording of call {record.id} at {tape_file} "
            "(calls are recorded by `ivr serve --record DIR` or `ivr call --record DIR`; "
            "give --recordings DIR)"
        )
    tape = read_yaml(tape_file, "recorded call")
    if not isinstance(tape, dict) or not isinstance(tape.get("turns"), list):
        raise ConfigError(f"{tape_file}: expected a recorded call with turns")
    stand_ins = StandIns()
    fixture_block = (
        _fixtures(fixtures, stand_ins)
        if fixtures
        else _known_accounts(store, tape.get("caller_id"), stand_ins)
    )
    out.mkdir(parents=True, exist_ok=True)
    turns = _turns(tape_file.parent, out, tape["turns"], record, stand_ins, fixture_block)
    caller = tape.get("caller_id")
    document: dict[str, Any] = {
        "name": f"promoted call {record.id}",
        "locale": record.locale or tape.get("locale") or "en-US",
        "caller_id": None if caller is None else stand_ins.text(str(caller)),
        "dialed": tape.get("dialed"),
        "fixtures": fixture_block,
        "turns": turns,
        "expect": _expect(record),
    }
    document = {k: v for k, v in document.items() if v not in (None, {})}
    text = HEADER.format(call_id=record.id) + yaml.safe_dump(
        document, allow_unicode=True, sort_keys=False
    )
    leaked = [clear for clear in stand_ins.mapping if clear in text]
    if leaked:  # never expected: every value went through the stand-ins
        raise ConfigError(f"refusing to write {out}: a sensitive value would appear in clear")
    path = out / "call.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _expect(record: CallRecord) -> dict[str, Any]:
    return {  # every key written is checked on replay, null included
        "outcome": record.outcome,
        "transfer_reason": record.transfer_reason,
        "ticket_team": record.ticket_team,
        "states": list(record.states),
    }


def _fixtures(path: Path, stand_ins: StandIns) -> dict[str, Any]:
    from ivr.serve import load_fixtures

    return _rewrite(load_fixtures(path), stand_ins)


def _rewrite(value: Any, stand_ins: StandIns) -> Any:
    """Every string in a fixtures block with its sensitive digits replaced."""
    if isinstance(value, dict):
        return {k: _rewrite(v, stand_ins) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, stand_ins) for v in value]
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value)
        rewritten = stand_ins.text(text)
        return rewritten if rewritten != text or isinstance(value, str) else value
    return value


def _known_accounts(store: Store, caller: Any, stand_ins: StandIns) -> dict[str, Any]:
    """Without a fixtures file: the caller's account, if the directory knows the caller."""
    from ivr.services.accounts import Accounts

    account = Accounts(store).by_phone(None if caller is None else str(caller))
    if account is None:
        return {}
    return {"accounts": [{"phone": stand_ins.text(account.phone), "name": account.name}]}


def _turns(
    tape_dir: Path,
    out: Path,
    raw: list[Any],
    record: CallRecord,
    stand_ins: StandIns,
    fixtures: dict[str, Any],
) -> list[dict[str, Any]]:
    masked_asks = [  # a spoken code is recorded as heard "(code spoken)", value "******"
        t.ask for t in record.turns if MASK in (t.heard or "") or MASK in (t.value or "")
    ]
    heard: dict[str, list[str]] = {}  # per ask, what was heard at each of its spoken turns
    for t in record.turns:
        if t.mode == "speech":
            heard.setdefault(t.ask, []).append(t.heard or "")
    turns: list[dict[str, Any]] = []
    for n, turn in enumerate(raw, 1):
        if not isinstance(turn, dict):
            raise ConfigError(f"{tape_dir / 'call.yaml'}: turn #{n}: expected a mapping")
        ask = turn.get("ask")
        spoken = heard.get(str(ask), [])
        keys = str(turn.get("dtmf", ""))
        if "dtmf" in turn and ask in masked_asks and TAIL_KEYS.fullmatch(keys):
            # the last digits of a code or number, keyed to correct its read-back: a piece
            # of the secret, and no piece of the stand-in; replayed as the stand-in whole
            masked_asks.remove(ask)
            whole = "".join(_spoken_stand_in(str(ask), fixtures).split())
            turns.append({**turn, "dtmf": whole + "#"})
        elif "dtmf" in turn:
            turns.append({**turn, "dtmf": stand_ins.text(keys)})
        elif turn.get("private") == "speech" and ask is not None and ask in masked_asks:
            masked_asks.remove(ask)
            del spoken[:1]
            turns.append({"say": _spoken_stand_in(ask, fixtures), "ask": ask})
        elif turn.get("private") == "speech" and spoken and spoken[0]:
            turns.append({"say": stand_ins.text(spoken.pop(0)), "ask": ask})
        elif "audio" in turn and ask is not None and ask in masked_asks:
            masked_asks.remove(ask)
            del spoken[:1]
            turns.append({"say": _spoken_stand_in(ask, fixtures), "ask": ask})
        elif "audio" in turn:
            del spoken[:1]
            name = f"turns/{Path(str(turn['audio'])).name}"
            (out / "turns").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tape_dir / str(turn["audio"]), out / name)
            turns.append({**turn, "audio": name})
        else:
            turns.append(dict(turn))
    return turns


def _spoken_stand_in(ask: str, fixtures: dict[str, Any]) -> str:
    """What the synthetic caller says instead of a spoken code or number: the stand-in
    of the fixture value that ask collects, digit by digit."""
    if "code" in ask and fixtures.get("verification_code"):
        digits = str(fixtures["verification_code"])
    else:
        accounts = fixtures.get("accounts") or [{}]
        digits = str(accounts[0].get("phone") or "")
    if not digits:
        raise ConfigError(
            f"ask {ask}: the caller spoke a sensitive value and no fixture says what it was "
            "(give the server's --fixtures file)"
        )
    return " ".join(digits)
