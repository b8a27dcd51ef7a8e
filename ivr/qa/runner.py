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
from ivr.dialog.prompt_cache import prerender_text
from ivr.errors import IvrError
from ivr.qa.testcall import TestCall, load_call
from ivr.services.store import Store
from ivr.session import CallResult, Runtime
from ivr.speech.audio import frame_samples, write_wav
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
    transcript: list[dict[str, Any]] = field(default_factory=list)  # lines and turns, in order
    recording: str | None = None  # the call's stereo WAV (caller left, IVR right)
    condition: str | None = None  # the caller condition the call ran under, if any
    flaky: bool = False  # with --repeat: the outcome varied between runs
    outcomes: list[str] = field(default_factory=list)  # with --repeat: every run's outcome
    expect: list[dict[str, Any]] = field(default_factory=list)  # each expectation, met or not

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
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
            "seconds": round(self.seconds, 2),
            "expect": self.expect,
            "transcript": self.transcript,
            "recording": self.recording,
        }
        if self.condition is not None:
            doc["condition"] = self.condition
        if self.outcomes:
            doc["outcomes"] = self.outcomes
            doc["flaky"] = self.flaky
        return doc


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
        condition: str | None = None,
    ) -> None:
        from ivr.qa.conditions import RENDERINGS, Condition

        self.settings = settings
        # None: the caller's audio as the test call has it (rendered like "clean"), unlabelled
        self.condition = None if condition is None else Condition(condition)
        rendering = RENDERINGS[self.condition or Condition.CLEAN]
        # a phone-line caller is heard on an 8 kHz channel, whatever rate was asked for
        self.sample_rate = rendering.channel_rate or sample_rate
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

    def close(self) -> None:
        """Remove the per-call databases this runner made (when it made their folder)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def run_path(self, path: Path) -> CallReport:
        started = time.perf_counter()
        try:
            call = load_call(path, condition=self.condition or "clean")
        except IvrError as exc:
            return CallReport(name=path.parent.name, path=str(path), passed=False, error=str(exc))
        report = self.run_call(call)
        report.condition = None if self.condition is None else str(self.condition)
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
        agents = call.fixtures.get("agents")  # busy: a transfer finds no free agent
        if agents not in (None, "busy", "answer"):
            store.close()
            return CallReport(
                call.name,
                str(call.path),
                False,
                f"{call.path}: fixtures: agents: expected busy or answer, got {agents!r}",
            )
        channel = channel or self.channel_for(
            call, agent_answers=None if agents is None else agents == "answer"
        )
        code = call.fixtures.get("verification_code")
        try:
            earlier = self._earlier_calls(runtime, call, None if code is None else str(code))
        except (IvrError, TypeError) as exc:
            store.close()
            return CallReport(call.name, str(call.path), False, f"{call.path}: fixtures: {exc}")
        timeline = Timeline(observer)
        result = runtime.run_call(
            channel,
            locale=call.locale,
            fixed_code=None if code is None else str(code),
            observer=timeline,
        )
        self.latencies_ms.extend(result.latencies_ms)
        report = self._check(call, result, channel)
        if earlier:
            report.failures[:0] = earlier
            report.passed = False
            report.error = "; ".join(report.failures)
        report.transcript = timeline.events
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            wav = self.record_dir / f"{call.path.parent.name}.wav"
            write_wav(wav, channel.stereo(), channel.sample_rate)
            report.recording = str(wav)
        store.close()
        return report

    def channel_for(self, call: TestCall, *, agent_answers: bool | None = None) -> ScriptedChannel:
        """The scripted line a call runs on, in this runner's caller condition."""
        from ivr.qa.conditions import Condition, background

        line = background(
            self.condition or Condition.CLEAN,
            self.sample_rate,
            frame_samples(self.sample_rate),
            key=call.path.parent.name,
        )
        return ScriptedChannel(
            call.turns,
            sample_rate=self.sample_rate,
            caller_id=call.caller_id,
            dialed=call.dialed,
            line=line,
            agent_answers=agent_answers,
        )

    def _earlier_calls(self, runtime: Runtime, call: TestCall, code: str | None) -> list[str]:
        """Run the calls named by ``fixtures.earlier_calls`` (test-call folders, relative to
        this one) first, on the same database: the same caller calling again. The failures of
        each (its own expectations) come back, named."""
        failures: list[str] = []
        raw = call.fixtures.get("earlier_calls") or []
        if not isinstance(raw, list):
            raise TypeError("earlier_calls: expected a list of test-call folders")
        for name in raw:
            before = load_call(call.path.parent / str(name), condition=self.condition or "clean")
            channel = self.channel_for(before)
            result = runtime.run_call(channel, locale=before.locale, fixed_code=code)
            checked = self._check(before, result, channel)
            failures.extend(f"earlier call {name}: {f}" for f in checked.failures)
        return failures

    @staticmethod
    def _fixtures(runtime: Runtime, call: TestCall) -> None:
        for account in call.fixtures.get("accounts") or []:
            runtime.accounts.add(str(account["phone"]), str(account.get("name", "Caller")))
        if not call.fixtures.get("accounts"):
            runtime.accounts.seed_demo()
        for earlier in call.fixtures.get("recovery_attempts") or []:
            # earlier recovery attempts: {number, caller (default: this call's), found,
            # count, minutes_ago}
            runtime.recovery_attempts.seed(
                number=str(earlier["number"]),
                caller=str(earlier.get("caller", call.caller_id) or "") or None,
                found=bool(earlier.get("found", True)),
                count=int(earlier.get("count", 1)),
                ago_s=float(earlier.get("minutes_ago", 60)) * 60,
            )
        if call.fixtures.get("patient"):  # the caller's number is remembered as patient
            if not call.caller_id:
                raise ValueError("patient: true needs the call's caller_id")
            runtime.patients.remember(call.caller_id)
        for ticket in call.fixtures.get("tickets") or []:
            seeded = runtime.tickets.seed(ticket)
            if seeded.resolution:  # as when the team wrote it: in the cache before anyone calls
                prerender_text(runtime.settings, runtime.synth, call.locale, seeded.resolution)

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
        if exp.states and not _in_order(exp.states, result.states):
            failures.append(
                f"states: expected the path to pass {' -> '.join(exp.states)} in order, "
                f"got {' -> '.join(result.states)}"
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
            expect=_expectations(call, result, failures),
        )


class Timeline:
    """The call's observer: what the IVR said and each recorded turn, in the order they came."""

    def __init__(self, inner: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.inner = inner
        self.events: list[dict[str, Any]] = []
        self._turns = 0

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "line":
            self.events.append({"speaker": data["speaker"], "text": data["text"]})
        elif kind == "turn":
            self.events.append({"turn": self._turns})
            self._turns += 1
        if self.inner is not None:
            self.inner(kind, data)


def _in_order(wanted: list[str], path: list[str]) -> bool:
    """Whether ``wanted`` is a subsequence of ``path``."""
    remaining = iter(path)
    return all(state in remaining for state in wanted)


def _expectations(call: TestCall, result: CallResult, failures: list[str]) -> list[dict[str, Any]]:
    """What the call expected, what happened, and whether it held (for reports)."""
    exp = call.expect
    got: dict[str, Any] = {
        "outcome": str(result.outcome),
        "transfer_reason": result.transfer_reason,
        "ticket_team": result.ticket_team,
        "feedback_category": result.feedback_category,
        "said": None,
        "states": result.states,
    }
    checks = []
    for key in sorted(exp.has & set(got), key=list(got).index):
        expected = getattr(exp, key)
        failed = any(f.startswith(f"{key}:") for f in failures)
        checks.append({"key": key, "expected": expected, "got": got[key], "passed": not failed})
    return checks
