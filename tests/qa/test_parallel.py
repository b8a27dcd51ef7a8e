"""`-j N` gives what `-j 1` gives; `--repeat N` reports calls whose outcome varies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.qa.parallel import RunOptions, _merge, run_suite
from ivr.qa.runner import CallReport
from tests.conftest import REPO
from tests.qa.conftest import SuiteRun, ivr


def _essence(report: CallReport) -> tuple[Any, ...]:
    turns = tuple((t["ask"], t["mode"], t["heard"], t["value"]) for t in report.turns)
    return (
        report.path,
        report.passed,
        report.outcome,
        report.transfer_reason,
        tuple(report.states),
        turns,
    )


def test_two_jobs_give_the_same_results_as_one(settings: Settings, suite_calls: list[Path]) -> None:
    one = run_suite(settings, suite_calls, RunOptions(jobs=1))
    two = run_suite(settings, suite_calls, RunOptions(jobs=2))
    assert [r.path for r in two] == [str(p / "call.yaml") for p in suite_calls]  # suite order
    assert [_essence(r) for r in two] == [_essence(r) for r in one]
    assert sum(r.passed for r in two) == len(suite_calls) - 1


def test_repeat_of_a_deterministic_call_is_not_flaky(ivr_home: Path, suite_run: SuiteRun) -> None:
    out = ivr(ivr_home, "qa", "run", str(suite_run.calls[1]), "--repeat", "2", "-j", "2", "--json")
    assert out.returncode == 0, out.stderr
    import json

    (call,) = json.loads(out.stdout)["calls"]
    assert call["outcomes"] == ["transferred", "transferred"] and call["flaky"] is False
    assert "(run 2/2)" in out.stderr and "FLAKY" not in out.stderr


def _report(outcome: str, passed: bool, value: str = "yes") -> CallReport:
    turns = [{"ask": "confirm", "value": value}]
    return CallReport(
        "c", "c/call.yaml", passed, None if passed else "outcome: x", outcome=outcome, turns=turns
    )


def test_repeat_flags_a_call_whose_outcome_varies() -> None:
    steady = _merge([_report("resolved", True), _report("resolved", True)])
    assert not steady.flaky and steady.passed
    varying = _merge([_report("resolved", True), _report("transferred", False)])
    assert varying.flaky and not varying.passed
    assert varying.outcomes == ["resolved", "transferred"]
    assert varying.error and varying.error.startswith("failed in 1 of 2 runs")
    heard_otherwise = _merge([_report("resolved", True), _report("resolved", True, value="no")])
    assert heard_otherwise.flaky


def test_parallel_run_of_spoken_calls_ends_when_its_calls_do(ivr_home: Path) -> None:
    """Each job process has its own recognition workers; the run must stop them and end
    (it once printed every PASS and then waited for them forever). With ``-v`` the job
    processes log as the command does, each line naming its process, on stderr alone."""
    import json

    calls = [REPO / "tests" / "calls" / n for n in ("ticket_status_speech", "silence_at_menu")]
    out = ivr(ivr_home, "-v", "qa", "run", *map(str, calls), "-j", "2", "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    assert [c["passed"] for c in json.loads(out.stdout)["calls"]] == [True, True]
    started = [
        line for line in out.stderr.splitlines() if "ivr.session" in line and "call started" in line
    ]
    assert len(started) == 2 and all("SpawnProcess" in line for line in started), out.stderr[-2000:]
    assert any("DEBUG ivr.speech.asr.routed" in line for line in out.stderr.splitlines())
