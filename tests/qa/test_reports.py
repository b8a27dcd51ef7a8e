"""`ivr qa run`: the JSON document alone on stdout, JUnit with turns, run summaries."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from ivr.qa.results import percentile, run_document, summarize
from tests.qa.conftest import SuiteRun


def test_json_stdout_is_the_document_alone(suite_run: SuiteRun) -> None:
    assert suite_run.returncode == 1  # one call fails on purpose
    doc = json.loads(suite_run.stdout)  # nothing but the document on stdout
    assert (doc["passed"], doc["failed"]) == (3, 1)
    assert "PASS account recovery by keys only" in suite_run.stderr
    assert "3 passed, 1 failed" in suite_run.stderr
    summary = doc["summary"]
    assert summary["latency_p50_ms"] <= summary["latency_p95_ms"]
    assert "main_menu" in summary["p95_by_ask"]
    assert summary["by_condition"] == {}  # no call ran under a caller condition
    failing = doc["calls"][-1]
    assert not failing["passed"]
    assert {"key": "outcome", "expected": "transferred", "got": "resolved", "passed": False} in (
        failing["expect"]
    )
    assert failing["transcript"][0]["speaker"] == "ivr"  # the greeting comes first
    assert any("turn" in e for e in failing["transcript"])


def test_junit_carries_turns_and_latency(suite_run: SuiteRun) -> None:
    suite = ET.parse(suite_run.junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("4", "1")
    cases = suite.findall("testcase")
    out = cases[0].findtext("system-out") or ""
    assert "outcome: resolved" in out
    assert "turn 1: main_menu [dtmf] heard '1' -> account_recovery" in out
    assert "latency" in out and " ms" in out
    assert "13800138000" not in out and "482913" not in out
    failure = cases[-1].find("failure")
    assert failure is not None and "outcome: expected transferred" in (failure.get("message") or "")
    assert "turn 1: main_menu" in (cases[-1].findtext("system-out") or "")


def test_summary_groups_rates_by_condition() -> None:
    calls = [
        {
            "path": "a",
            "passed": True,
            "condition": "clean",
            "turns": [{"ask": "x", "latency_ms": 10}],
        },
        {
            "path": "a",
            "passed": False,
            "condition": "noisy",
            "turns": [{"ask": "x", "latency_ms": 30}],
        },
        {"path": "b", "passed": True, "condition": "noisy", "turns": []},
    ]
    summary = summarize(calls)
    assert {c: (r.passed, r.total) for c, r in summary.by_condition.items()} == {
        "clean": (1, 1),
        "noisy": (1, 2),
    }
    assert run_document(calls)["summary"]["by_condition"]["noisy"]["rate"] == 0.5
    assert summary.p95_by_ask == {"x": 30.0}


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.5) == 5.0
    assert percentile(range(1, 101), 0.95) == 95
    assert percentile([1, 2, 3, 4], 0.5) == 2
