"""`ivr qa diff` / `--baseline` against a deliberately broken grammar; flow coverage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ivr.qa.coverage import flow_coverage
from ivr.qa.diff import diff_runs
from tests.conftest import REPO
from tests.qa.conftest import SuiteRun, ivr


@pytest.fixture(scope="module")
def broken_run(ivr_home: Path, suite_run: SuiteRun, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The same calls with the yes/no grammar's keys swapped (1 now means no)."""
    grammars = tmp_path_factory.mktemp("broken") / "grammars"
    shutil.copytree(REPO / "grammars", grammars)
    yes_no = grammars / "en-US" / "yes_no.yaml"
    text = yes_no.read_text()
    assert '"1": "yes"' in text
    swapped = text.replace('"1": "yes"', '"1": "NO"').replace('"2": "no"', '"2": "yes"')
    yes_no.write_text(swapped.replace('"1": "NO"', '"1": "no"'))
    config = grammars.parent / "ivr.toml"
    config.write_text(f'grammars_dir = "{grammars}"\n')
    out = ivr(
        ivr_home,
        "qa",
        "run",
        *map(str, suite_run.calls),
        "--json",
        "--baseline",
        str(suite_run.json_file),
        env={"IVR_CONFIG": str(config)},
    )
    new = grammars.parent / "new.json"
    new.write_text(out.stdout)
    return out, new


def test_baseline_reports_the_regression(broken_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = broken_run
    assert out.returncode == 1
    assert "REGRESSED (passed, now fails)" in out.stderr
    assert "recovery_keys_only/call.yaml" in out.stderr


def test_diff_catches_a_broken_grammar(ivr_home: Path, suite_run: SuiteRun, broken_run) -> None:  # type: ignore[no-untyped-def]
    _, new = broken_run
    out = ivr(ivr_home, "qa", "diff", str(suite_run.json_file), str(new), "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    diff = json.loads(out.stdout)
    regressed = {Path(p).parent.name for p in diff["regressed"]}
    assert {"recovery_keys_only", "content_review_keys"} <= regressed
    changed = [t for t in diff["turns"] if t["field"] == "value"]
    assert {"old": "yes", "new": "no"}.items() <= changed[0].items()
    assert diff["still_failing"]  # the call that failed before fails still: not a regression
    text = ivr(ivr_home, "qa", "diff", str(suite_run.json_file), str(new))
    assert "turn changed:" in text.stdout and "value: 'yes' -> 'no'" in text.stdout


def test_diff_of_a_run_with_itself_is_clean(ivr_home: Path, suite_run: SuiteRun) -> None:
    same = ivr(ivr_home, "qa", "diff", str(suite_run.json_file), str(suite_run.json_file))
    assert same.returncode == 0, same.stdout
    assert "0 regressed, 0 fixed, 0 turn changes" in same.stdout


def test_diff_matches_calls_by_condition(suite_run: SuiteRun) -> None:
    old = {
        "calls": [
            {"path": "a", "condition": "clean", "passed": True},
            {"path": "a", "condition": "noisy", "passed": True},
        ]
    }
    new = {
        "calls": [
            {"path": "a", "condition": "clean", "passed": True},
            {"path": "a", "condition": "noisy", "passed": False},
        ]
    }
    assert diff_runs(old, new).regressed == ["a [noisy]"]


def test_coverage_lists_a_transition_no_call_exercises(ivr_home: Path, suite_run: SuiteRun) -> None:
    out = ivr(ivr_home, "qa", "coverage", str(suite_run.json_file))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  never taken: try_another_number --yes--> phone_number" in lines
    assert "  never taken: recovery_start --unknown_caller--> phone_number" not in lines
    assert "  never taken: verify_code --wrong--> verification_code" not in lines
    assert any(line.startswith("transitions: ") for line in lines)
    cov = flow_coverage(suite_run.doc["calls"])
    missed = {str(t) for t in cov.missed_transitions}
    assert "main_menu --feedback--> feedback_recording" in missed
    assert "main_menu --content_review--> content_type" not in missed
    assert "end" in cov.visited  # calls that ended normally reached the final state
    assert not cov.undeclared  # every step of every call is a declared transition


def test_flow_graph_colours_coverage(ivr_home: Path, suite_run: SuiteRun, tmp_path: Path) -> None:
    svg = tmp_path / "recovery.svg"
    out = ivr(
        ivr_home,
        "flow",
        "graph",
        "account_recovery",
        "--format",
        "svg",
        "-o",
        str(svg),
        "--coverage",
        str(suite_run.json_file),
    )
    assert out.returncode == 0, out.stderr
    text = svg.read_text()
    assert "palegreen" in text and "mistyrose" in text  # covered and never-entered states
    mermaid = ivr(
        ivr_home, "flow", "graph", "account_recovery", "--coverage", str(suite_run.json_file)
    )
    assert "Class try_another_number s_missed" in mermaid.stdout
    assert "Class verify_code s_covered" in mermaid.stdout
