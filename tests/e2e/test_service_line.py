"""The service line beyond recovery, end to end: tickets and feedback as the back office sees
them (the `ivr` command on the same SQLite file), Mandarin by dialled number, flow diagrams."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.channels.scripted import ScriptedChannel
from ivr.config import Settings
from ivr.flows.call import FLOWS
from ivr.qa.runner import QaRunner
from ivr.qa.testcall import load_call
from ivr.services.store import Store
from ivr.session import LocaleBooks, Runtime
from tests.conftest import REPO

CALLS = REPO / "tests" / "calls"


def ivr(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IVR_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture
def shared_db(settings, tmp_path: Path) -> tuple[QaRunner, Path]:  # type: ignore[no-untyped-def]
    db = tmp_path / "line.sqlite3"
    return QaRunner(settings, db_file=db), db


def test_review_ticket_reaches_the_team_and_the_caller_hears_the_result(
    shared_db, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    runner, db = shared_db
    report = runner.run_path(CALLS / "content_review_keys" / "call.yaml")
    assert report.passed, report.error

    listed = ivr(tmp_path, "tickets", "list", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if "content_review" in line)
    number = line.split()[0]
    assert re.fullmatch(r"\d{8}", number)
    # both answers and the masked caller number; never the full number
    assert "content_type=dance" in line and "published=yesterday" in line
    assert "*******8000" in line and "13800138000" not in listed.stdout

    conn = sqlite3.connect(db)
    created = conn.execute(
        "SELECT to_number, body FROM sms_outbox WHERE kind = 'ticket' ORDER BY id"
    ).fetchall()
    assert created == [("13800138000", created[0][1])] and number in created[0][1]

    refused = ivr(tmp_path, "tickets", "update", number, "--status", "resolved", "--db", str(db))
    assert refused.returncode == 2 and "resolution" in refused.stderr
    assert conn.execute("SELECT COUNT(*) FROM sms_outbox WHERE kind = 'ticket'").fetchone()[0] == 1

    moved = ivr(tmp_path, "tickets", "update", number, "--status", "in_progress", "--db", str(db))
    assert moved.returncode == 0, moved.stderr
    resolution = "The video had a misleading title. Reach is back to normal."
    done = ivr(
        tmp_path,
        "tickets",
        "update",
        number,
        "--status",
        "resolved",
        "--resolution",
        resolution,
        "--db",
        str(db),
    )
    assert done.returncode == 0, done.stderr
    texts = conn.execute(
        "SELECT to_number, body FROM sms_outbox WHERE kind = 'ticket' ORDER BY id"
    ).fetchall()
    assert len(texts) == 2
    assert texts[1][0] == "13800138000" and number in texts[1][1] and resolution in texts[1][1]

    shown = ivr(tmp_path, "tickets", "show", number, "--json", "--db", str(db))
    ticket = json.loads(shown.stdout)
    assert ticket["status"] == "resolved" and ticket["resolution"] == resolution
    assert [h["status"] for h in ticket["history"]] == ["open", "in_progress", "resolved"]
    assert ticket["caller"] == "*******8000"

    # the caller phones back: the resolution is read to them
    call = load_call(CALLS / "ticket_status_unknown_then_known" / "call.yaml")
    call.fixtures = {}
    call.turns[4] = dataclasses.replace(call.turns[4], keys=number)  # the ticket just resolved
    call.expect.said = [resolution]
    call.expect.has.add("said")
    again = runner.run_call(call)
    assert again.passed, again.error


def test_ticket_numbers_are_not_sequential(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings, store=Store(tmp_path / "t.sqlite3"))
    numbers = [
        runtime.tickets.create("product", {}, caller=None, locale="en-US").number for _ in range(20)
    ]
    assert len(set(numbers)) == 20 and all(re.fullmatch(r"[1-9]\d{7}", n) for n in numbers)
    gaps = {abs(int(a) - int(b)) for a, b in itertools.pairwise(numbers)}
    assert min(gaps) > 1  # consecutive tickets never differ by one


def test_a_locales_books_are_seen_whole_by_calls_that_arrive_together(
    settings: Settings, tmp_path: Path
) -> None:
    """Ten callers at a freshly started server: one found the locale's books loaded but not yet
    its feedback classifier, and that call failed before its first word."""
    runtime = Runtime(settings, store=Store(tmp_path / "b.sqlite3"))
    seen: list[object] = []

    def watch() -> None:  # what a second call does the moment the books are there
        deadline = time.monotonic() + 10
        while "en-US" not in runtime._books and time.monotonic() < deadline:
            pass
        seen.append(runtime._books.get("en-US"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    runtime.books("en-US")
    watcher.join(10)
    assert seen and isinstance(seen[0], LocaleBooks) and seen[0].classifier is not None


def test_a_call_that_cannot_begin_leaves_a_closed_record(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime(settings, store=Store(tmp_path / "c.sqlite3"))

    def broken(*_: object) -> None:
        raise RuntimeError("the caller memory is unreachable")

    monkeypatch.setattr(runtime, "_patient_mode", broken)
    with pytest.raises(RuntimeError):
        runtime.run_call(ScriptedChannel([], caller_id="+15550008000"))
    conn = sqlite3.connect(tmp_path / "c.sqlite3")
    (row,) = conn.execute("SELECT ended_at, outcome, transfer_reason, error FROM calls").fetchall()
    conn.close()
    assert row[0] is not None and row[1:3] == ("failed", "system_error")
    assert "the caller memory is unreachable" in row[3]


def test_feedback_is_kept_with_audio_and_listed_by_category(shared_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner, db = shared_db
    report = runner.run_path(CALLS / "feedback_bug" / "call.yaml")
    assert report.passed, report.error
    assert report.feedback_category == "bug"

    listed = ivr(tmp_path, "feedback", "list", "--category", "bug", "--json", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    (item,) = json.loads(listed.stdout)
    assert item["queue"] == "product" and item["call_id"] == report.call_id
    assert "crash" in item["transcript"]
    assert item["caller"] == "*******8000"
    with wave.open(item["audio_path"]) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        seconds = w.getnframes() / w.getframerate()
    assert 2.0 < seconds < 15.0 and item["seconds"] == pytest.approx(seconds, abs=0.05)
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 300  # speech, not silence

    other = ivr(tmp_path, "feedback", "list", "--category", "praise", "--json", "--db", str(db))
    assert json.loads(other.stdout) == []


def test_dialled_number_selects_mandarin(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    call = load_call(CALLS / "zh_content_review_keys" / "call.yaml")
    runtime = Runtime(
        settings.with_(dnis={"4008001001": "zh-CN"}), store=Store(tmp_path / "d.sqlite3")
    )
    channel = ScriptedChannel(call.turns, caller_id=call.caller_id, dialed="4008001001")
    result = runtime.run_call(channel)  # no locale given: the dialled number decides
    assert result.outcome == "resolved" and result.ticket_team == "content_review"
    said = " ".join(text for who, text in result.transcript if who == "ivr")
    assert "您好" in said and "Hello" not in said
    row = runtime.store.query("SELECT locale FROM calls WHERE id = ?", (result.call_id,))[0]
    assert row["locale"] == "zh-CN"
    # and an unmapped number keeps the configured default
    assert runtime.locale_for(ScriptedChannel([], dialed="5551234")) == "en-US"


def test_unknown_locale_in_configuration_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "ivr.toml"
    config.write_text('[dnis]\n"4008001001" = "fr-FR"\n', encoding="utf-8")
    result = ivr(tmp_path, "--config", str(config), "calls", "list")
    assert result.returncode == 2
    assert "dnis.4008001001" in result.stderr and "fr-FR" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_flow_graph_draws_every_state(flow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mermaid = ivr(tmp_path, "flow", "graph", flow.name)
    assert mermaid.returncode == 0, mermaid.stderr
    assert "stateDiagram" in mermaid.stdout
    drawn = set(re.findall(r'^\s*state "([^"]+)"', mermaid.stdout, re.MULTILINE))
    assert set(flow.states) <= drawn
    for trigger, source, dest in flow.transitions:
        assert f"{source} --> {dest}: {trigger}" in mermaid.stdout

    svg_path = tmp_path / f"{flow.name}.svg"
    svg = ivr(tmp_path, "flow", "graph", flow.name, "--format", "svg", "-o", str(svg_path))
    assert svg.returncode == 0, svg.stderr
    titles = set(re.findall(r"<title>([^<]+)</title>", svg_path.read_text(encoding="utf-8")))
    assert set(flow.states) <= titles


def test_flow_graph_png_and_bad_names(tmp_path: Path) -> None:
    png = tmp_path / "call.png"
    made = ivr(tmp_path, "flow", "graph", "call", "--format", "png", "-o", str(png))
    assert made.returncode == 0, made.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = ivr(tmp_path, "flow", "graph", "nonsense")
    assert bad.returncode == 2 and "unknown flow" in bad.stderr and "content_review" in bad.stderr


def test_mandarin_demo_runs_by_keys(tmp_path: Path) -> None:
    out = tmp_path / "zh.wav"
    result = ivr(tmp_path, "demo", "--locale", "zh-CN", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "outcome: resolved" in result.stdout
    assert "您的视频已经恢复推荐" in result.stdout  # the resolution, read in Mandarin
    with wave.open(str(out)) as w:
        ivr_side = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[1::2]
    assert np.sqrt(np.mean(ivr_side.astype(np.float64) ** 2)) > 100
