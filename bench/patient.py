"""Patient mode: the share of slow, noisy callers served without an agent, off and on.

Each simulated caller wants a ticket's status by speech: "ticket status", the eight
digits, "yes" to the read-back, "no" to anything else. The words are synthesised in the
slow/noisy caller condition (``ivr qa run --condition noisy``: a slow, low voice, line
noise at 15 dB SNR all call long) and heard by the real recognisers. The caller answers
when the IVR listens, after a pause of their own: each caller has a typical pause drawn
between ``PAUSE_SEC`` (seeded, the same callers in both runs) and each answer varies
around it (log-normal, ``SPREAD``). An answer that starts after the ask's no-input timeout is lost:
the IVR reprompts and the caller starts again. A caller is served when the call ends
``resolved`` after the IVR said the ticket's status. Each call runs on a fresh database
(no caller is remembered from an earlier call).

    python bench/patient.py [--callers N]

Writes bench/patient.json and prints the README table.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.channels.base import HangUp  # noqa: E402
from ivr.channels.scripted import ScriptedChannel, Turn, TurnKind  # noqa: E402
from ivr.config import Patient, Settings, load_settings  # noqa: E402
from ivr.qa.conditions import Condition, background  # noqa: E402
from ivr.qa.runner import QaRunner  # noqa: E402
from ivr.qa.synth import condition_speech  # noqa: E402
from ivr.qa.testcall import load_call  # noqa: E402
from ivr.speech.audio import Audio, frame_samples  # noqa: E402

CONDITION: Final = "noisy"
RATE: Final = 16000
PAUSE_SEC: Final = (3.0, 8.0)  # a caller's typical pause before answering
SPREAD: Final = 0.3  # log-normal spread of one answer's pause around the caller's own
SEED: Final = 13
TICKET: Final = "20261120"
ANSWERS: Final = {
    "main_menu": "ticket status",
    "ticket_number": "two zero two six, one one two zero",
    "confirm_ticket_number": "yes",
    "anything_else": "no",
}
STATUS_SAID: Final = "is in progress"  # the only ticket there is (another number: not found)
CALL_YAML: Final = f"""name: a slow caller asks for a ticket's status
locale: en-US
caller_id: "13800138000"
fixtures:
  tickets: [{{number: "{TICKET}", status: in_progress, team: content_review}}]
turns:
  - hangup: true   # the caller below answers each ask as it comes
"""


class SlowCaller(ScriptedChannel):
    """Answers whatever the IVR asks, after the caller's own pause (the line's noise goes on
    meanwhile); hangs up on anything it has no answer for. It stops talking when the IVR
    speaks again."""

    def __init__(self, answers: dict[str, Audio], pauses_sec: list[float], key: str) -> None:
        line = background(Condition(CONDITION), RATE, frame_samples(RATE), key=key)
        super().__init__([], sample_rate=RATE, caller_id="13800138000", line=line)
        self.answers = answers
        self.pauses = collections.deque(pauses_sec)

    def asking(self, ask: str) -> None:
        self._pending = collections.deque(e for e in self._pending if isinstance(e, HangUp))

    def listening(self, ask: str) -> None:
        self._pending = collections.deque(e for e in self._pending if isinstance(e, HangUp))
        audio = self.answers.get(ask)
        if audio is None or not self.pauses:
            self._turns.append(Turn(TurnKind.HANGUP))
            self._start_turn(lead_in_ms=0)
            return
        self._turns.append(Turn(TurnKind.AUDIO, audio=audio))
        self._start_turn(lead_in_ms=int(self.pauses.popleft() * 1000))


def callers(n: int) -> list[list[float]]:
    """Each caller's pauses (seconds), one per answer they may give."""
    rng = np.random.default_rng(SEED)
    out = []
    for _ in range(n):
        typical = rng.uniform(*PAUSE_SEC)
        out.append([float(typical * rng.lognormal(0.0, SPREAD)) for _ in range(40)])
    return out


def run(settings: Settings, population: list[list[float]], answers: dict[str, Audio]) -> dict:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "slow_caller"
        folder.mkdir()
        (folder / "call.yaml").write_text(CALL_YAML, encoding="utf-8")
        call = load_call(folder / "call.yaml")
        runner = QaRunner(settings, db_dir=Path(tmp))
        served = 0
        outcomes: collections.Counter[str] = collections.Counter()
        patient_calls = 0
        started = time.perf_counter()
        for i, pauses in enumerate(population):
            report = runner.run_call(call, channel=SlowCaller(answers, pauses, f"caller-{i}"))
            spoken = " ".join(e.get("text", "") for e in report.transcript if "speaker" in e)
            ok = report.outcome == "resolved" and STATUS_SAID in spoken
            served += ok
            outcomes[f"{report.outcome} {report.transfer_reason or ''}".strip()] += 1
            patient_calls += "more time to answer" in spoken
        return {
            "callers": len(population),
            "served_without_agent": served,
            "share": round(served / len(population), 3),
            "patient_calls": patient_calls,
            "outcomes": dict(outcomes),
            "seconds": round(time.perf_counter() - started, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callers", type=int, default=24)
    args = parser.parse_args()
    answers = {
        ask: condition_speech(text, locale="en-US", condition=CONDITION)
        for ask, text in ANSWERS.items()
    }
    population = callers(args.callers)
    results: dict[str, object] = {
        "condition": CONDITION,
        "pause_sec": PAUSE_SEC,
        "spread": SPREAD,
    }
    with tempfile.TemporaryDirectory() as home:
        on = load_settings(home=Path(home))
        never = 10**6
        off = on.with_(patient=Patient(slower_requests=never, failures_in_a_row=never))
        for name, settings in (("off", off), ("on", on)):
            results[name] = run(settings, population, answers)
            print(name, json.dumps(results[name]), flush=True)
    out = REPO / "bench" / "patient.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}\n")
    print("| patient mode | slow/noisy callers served without an agent | transferred |")
    print("|---|---|---|")
    for name in ("off", "on"):
        r = results[name]
        assert isinstance(r, dict)
        moved = sum(v for k, v in r["outcomes"].items() if k.startswith("transferred"))
        print(
            f"| {name} | {r['served_without_agent']} of {r['callers']} ({r['share']:.0%}) |"
            f" {moved} |"
        )


if __name__ == "__main__":
    main()
