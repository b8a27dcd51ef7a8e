"""`ivr agents`, `ivr report` and `ivr desk` as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ivr.agents.directory import Directory
from ivr.services.store import Store


def ivr(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "IVR_HOME": str(tmp_path / "home")},
    )


def test_agents_commands(tmp_path: Path, db: Path) -> None:
    added = ivr(
        tmp_path, "agents", "add", "li", "--role", "agent", "--sip", "sip:li@10.0.0.5",
        "--languages", "zh-CN,en-US", "--password-stdin", "--db", str(db),
        stdin="a long enough password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "a long enough password" not in added.stdout + added.stderr
    listed = ivr(tmp_path, "agents", "list", "--json", "--db", str(db))
    (li,) = json.loads(listed.stdout)
    assert li["name"] == "li" and li["languages"] == ["zh-CN", "en-US"] and li["state"] == "away"
    token = ivr(tmp_path, "agents", "token", "li", "--db", str(db)).stdout.strip()
    store = Store(db)
    try:
        assert Directory(store).by_token(token) is not None
        assert Directory(store).check_password("li", "a long enough password") is not None
        assert ivr(tmp_path, "agents", "disable", "li", "--db", str(db)).returncode == 0
        assert Directory(store).by_token(token) is None
    finally:
        store.close()
    # no terminal and no --password-stdin: refused, nothing added
    refused = ivr(tmp_path, "agents", "add", "x", "--db", str(db), stdin="")
    assert refused.returncode != 0 and "--password-stdin" in refused.stderr
    dup = ivr(tmp_path, "agents", "add", "li", "--password-stdin", "--db", str(db), stdin="p" * 9)
    assert dup.returncode == 2 and "exists already" in dup.stderr


def test_report_and_desk_refuse_bad_input(tmp_path: Path, db: Path) -> None:
    bad = ivr(tmp_path, "report", "--day", "yesterday", "--db", str(db))
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    text = ivr(tmp_path, "report", "--db", str(db))
    assert text.returncode == 0 and "0 calls" in text.stdout
    exposed = ivr(tmp_path, "desk", "--host", "0.0.0.0", "--db", str(db))
    assert exposed.returncode == 2 and "HTTPS" in exposed.stderr
