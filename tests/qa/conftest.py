"""One small suite run shared by the QA tests: keys-only calls (fast) and one call that fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

KEY_CALLS = ("recovery_keys_only", "three_wrong_codes", "content_review_keys")
FAILING_CALL = """name: expects the wrong outcome
caller_id: "13800138000"
turns:
  - dtmf: "3"
  - dtmf: "1"
  - dtmf: "2"
  - dtmf: "1"
  - dtmf: "2"
expect:
  outcome: transferred
  ticket_team: content_review
"""


@dataclass
class SuiteRun:
    folder: Path
    calls: list[Path]
    json_file: Path
    junit: Path
    html: Path
    stdout: str
    stderr: str
    returncode: int

    @property
    def doc(self) -> dict[str, Any]:
        return dict(json.loads(self.json_file.read_text()))


def ivr(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300):  # type: ignore[no-untyped-def]
    """Run the `ivr` command (bounded); returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "IVR_HOME": str(home), **(env or {})},
        check=False,
    )


@pytest.fixture(scope="session")
def suite_calls(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    bad = tmp_path_factory.mktemp("failing") / "wrong_outcome"
    bad.mkdir()
    (bad / "call.yaml").write_text(FAILING_CALL)
    return [REPO / "tests" / "calls" / name for name in KEY_CALLS] + [bad]


@pytest.fixture(scope="session")
def suite_run(
    ivr_home: Path, suite_calls: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> SuiteRun:
    folder = tmp_path_factory.mktemp("suite-run")
    junit, html = folder / "junit.xml", folder / "report"
    out = ivr(
        ivr_home,
        "qa",
        "run",
        *map(str, suite_calls),
        "--json",
        "--junit",
        str(junit),
        "--html",
        str(html),
    )
    json_file = folder / "run.json"
    json_file.write_text(out.stdout)
    return SuiteRun(
        folder, suite_calls, json_file, junit, html, out.stdout, out.stderr, out.returncode
    )
