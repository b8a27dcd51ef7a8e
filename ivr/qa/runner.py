"""Replaying test calls through the real call session and checking what they expect."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.channels.scripted import ScriptedChannel
from ivr.config import Settings
from ivr.errors import IvrError
from ivr.qa.testcall import TestCall, load_call
from ivr.services.store import Store
from ivr.session import CallResult, Runtime
from ivr.speech.audio import write_wav
from ivr.speech.engines import Engines
from ivr.speech.tts import Synthesizer

log = logging.getLogger(__name__)


@dataclass
class CallReport:
    name: str
    path: str
    passed: bool
    error: str | None
    outcome: str | None = None
    transfer_reason: str | None = None
    ticket_team: str | None = None
    feedback_category: str | None = None
    states: list[str] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    call_id: str | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    condition: str = "clean"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "passed": self.passed,
            "error": self.error,
            "outcome": self.outcome,
            "transfer_reason": self.transfer_reason,
            "ticket_team": self.ticket_team,
            "feedback_category": self.feedback_category,
            "states": self.states,
            "turns": self.turns,
            "call_id": self.call_id,
            "failures": self.failures,
            "condition": self.condition,
        }


class QaRunner:
    """Runs each test call on a fresh database (so fixtures and locks never leak between calls)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sample_rate: int = 16000,
        record_dir: Path | None = None,
        db_dir: Path | None = None,
        db_file: Path | None = None,
        condition: str = "clean",
    ) -> None:
        from ivr.qa.conditions import RENDERINGS, Condition

        self.settings = settings
        self.condition = Condition(condition)
        # a phone-line caller is heard on an 8 kHz channel, whatever rate was asked for
        self.sample_rate = RENDERINGS[self.condition].channel_rate or sample_rate
        self.record_dir = record_dir
        self.engines = Engines.from_settings(settings)
        self.synth = Synthesizer(settings.cache_dir / "prompts")
        self._tmp = (
            tempfile.TemporaryDirectory(prefix="ivr-qa-")
            if db_dir is None and db_file is None
            else None
        )
        if db_dir is None:
            db_dir = Path(self._tmp.name) if self._tmp is not None else Path(db_file).parent  # type: ignore[arg-type]
        self.db_dir = db_dir
        self.latencies_ms: list[float] = []
        self.db_file = db_file  # one shared database instead of a fresh one per call

    def run_path(self, path: Path) -> CallReport:
        started = time.perf_counter()
        try:
            call = load_call(path, condition=self.condition)
        except IvrError as exc:
            return CallReport(name=path.parent.name, path=str(path), passed=False, error=str(exc))
        report = self.run_call(call)
        report.condition = str(self.condition)
        report.seconds = time.perf_counter() - started
        return report

    def run_call(
        self,
        call: TestCall,
        *,
        channel: ScriptedChannel | None = None,
        observer: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> CallReport:
        db = self.db_file or self.db_dir / f"{call.path.parent.name}-{time.time_ns()}.sqlite3"
        store = Store(db)
        runtime = Runtime(
            self.settings.with_(locale=call.locale),
            store=store,
            engines=self.engines,
            synth=self.synth,
        )
        try:
            self._fixtures(runtime, call)
        except (IvrError, KeyError, TypeError, ValueError) as exc:
            return CallReport(call.name, str(call.path), False, f"{call.path}: fixtures: {exc}")
        channel = channel or ScriptedChannel(
            call.turns, sample_rate=self.sample_rate, caller_id=call.caller_id, dialed=call.dialed
        )
        code = call.fixtures.get("verification_code")
        result = runtime.run_call(
            channel,
            locale=call.locale,
            fixed_code=None if code is None else str(code),
            observer=observer,
        )
        self.latencies_ms.extend(result.latencies_ms)
        if self.record_dir is not None:
            write_wav(
                self.record_dir / f"{call.path.parent.name}.wav",
                channel.stereo(),
                channel.sample_rate,
            )
        report = self._check(call, result, channel)
        store.close()
        return report

    @staticmethod
    def _fixtures(runtime: Runtime, call: TestCall) -> None:
        for account in call.fixtures.get("accounts") or []:
            runtime.accounts.add(str(account["phone"]), str(account.get("name", "Caller")))
        if not call.fixtures.get("accounts"):
            runtime.accounts.seed_demo()
        for ticket in call.fixtures.get("tickets") or []:
            runtime.tickets.seed(ticket)

    @staticmethod
    def _check(call: TestCall, result: CallResult, channel: ScriptedChannel) -> CallReport:
        failures: list[str] = []
        exp = call.expect
        if exp.outcome is not None and result.outcome != exp.outcome:
            failures.append(f"outcome: expected {exp.outcome}, got {result.outcome}")
        if "transfer_reason" in exp.has and result.transfer_reason != exp.transfer_reason:
            failures.append(
                f"transfer_reason: expected {exp.transfer_reason}, got {result.transfer_reason}"
            )
        if "ticket_team" in exp.has and result.ticket_team != exp.ticket_team:
            failures.append(f"ticket_team: expected {exp.ticket_team}, got {result.ticket_team}")
        if "feedback_category" in exp.has and result.feedback_category != exp.feedback_category:
            failures.append(
                f"feedback_category: expected {exp.feedback_category}, "
                f"got {result.feedback_category}"
            )
        spoken = " ".join(" ".join(text.split()) for who, text in result.transcript if who == "ivr")
        for phrase in exp.said:
            if " ".join(phrase.split()).lower() not in spoken.lower():
                failures.append(f"said: the IVR never said {phrase!r}")
        if channel.exhausted:
            failures.append(
                f"{call.path}: the IVR asked again after the last turn "
                f"(turn #{channel.turns_used + 1} missing; it was in state {result.states[-1]})"
            )
        elif channel.turns_used < len(call.turns):
            failures.append(
                f"{call.path}: turn #{channel.turns_used + 1} was never asked for "
                f"(the call ended in state {result.states[-1] if result.states else '?'})"
            )
        if result.error:
            failures.append(f"call failed: {result.error}")
        return CallReport(
            name=call.name,
            path=str(call.path),
            passed=not failures,
            error="; ".join(failures) or None,
            outcome=str(result.outcome),
            transfer_reason=result.transfer_reason,
            ticket_team=result.ticket_team,
            feedback_category=result.feedback_category,
            states=result.states,
            turns=[t.as_dict() for t in result.turns],
            call_id=result.call_id,
            failures=failures,
        )
