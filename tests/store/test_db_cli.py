"""`ivr db`: online backups while a process writes, version, migrate, check, recover; and
the store checks catch what they are for."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ivr.services.calls import CallRecorder, TurnRecord
from ivr.services.integrity import check_store
from ivr.services.migrations import LATEST
from ivr.services.store import Store
from tests.store.records import dump, seed
from tests.store.test_kill_anywhere import _start_writer
from tests.store.v1data import ROWS, build_v1, table_rows


def ivr(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IVR_HOME": str(home)},
    )


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_backup_while_writes_go_on(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite3"
    seed(db)
    writer = _start_writer(db, 7)
    copies = []
    try:
        for n in range(3):
            if copies:  # let the writer get past the last copy first (bounded wait)
                deadline = time.monotonic() + 60
                while _count(db, "turns") <= _count(copies[-1][0], "turns"):
                    assert time.monotonic() < deadline, "the writer stopped writing"
                    time.sleep(0.1)
            before = _count(db, "turns")
            copy = tmp_path / f"backup-{n}.sqlite3"
            done = ivr(tmp_path, "db", "backup", str(copy), "--db", str(db))
            assert done.returncode == 0, done.stderr
            assert "written to" in done.stdout
            copies.append((copy, before))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(10)
    assert not list(tmp_path.glob("*.partial"))
    for copy, before in copies:
        assert not Path(str(copy) + "-wal").exists()  # one self-contained file
        assert _count(copy, "turns") >= before  # everything committed before it began
        store = Store(copy)
        try:
            assert store.version == LATEST
            assert check_store(store) == []
        finally:
            store.close()
        seeded = dump(copy)
        assert seeded["tickets"][0]["number"] == "20261120"
    # each copy holds more than the last: the writer went on while they were made
    counts = [_count(copy, "turns") for copy, _ in copies]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_backup_refuses_to_overwrite(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite3"
    Store(db).close()
    target = tmp_path / "copy.sqlite3"
    target.write_text("keep me")
    done = ivr(tmp_path, "db", "backup", str(target), "--db", str(db))
    assert done.returncode == 2 and "exists" in done.stderr
    assert target.read_text() == "keep me"
    done = ivr(tmp_path, "db", "backup", str(db), "--db", str(db), "--force")
    assert done.returncode == 2 and "another file" in done.stderr


def test_version_migrate_check(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    build_v1(db)
    done = ivr(tmp_path, "db", "migrate", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert f"upgraded to schema version {LATEST}" in done.stdout
    for table, rows in ROWS.items():
        assert table_rows(db, table, list(rows[0])) == rows
    done = ivr(tmp_path, "db", "version", "--db", str(db))
    assert done.stdout.startswith(f"schema version {LATEST}")
    done = ivr(tmp_path, "db", "check", "--db", str(db), "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"ok": True, "problems": []}
    # a broken rule is reported, with exit status 1
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM ticket_history")
    conn.close()
    done = ivr(tmp_path, "db", "check", "--db", str(db))
    assert done.returncode == 1 and "ticket 20261120: no history" in done.stdout


def test_recover_closes_only_the_named_server(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite3"
    store = Store(db)
    mine = CallRecorder(store, channel="sip", locale="en-US", caller_id=None, server="a")
    mine.turn(TurnRecord("main_menu", "dtmf", "1", "account_recovery", None))
    other = CallRecorder(store, channel="sip", locale="en-US", caller_id=None, server="b")
    store.close()
    assert ivr(tmp_path, "db", "recover", "--db", str(db)).returncode == 2
    done = ivr(tmp_path, "db", "recover", "--db", str(db), "--server", "a")
    assert done.returncode == 0 and "closed 1 calls" in done.stdout and mine.call_id in done.stdout
    rows = {r["id"]: r for r in dump(db)["calls"]}
    assert rows[mine.call_id]["outcome"] == "abandoned"
    assert rows[mine.call_id]["transfer_reason"] == "interrupted"
    assert rows[other.call_id]["ended_at"] is None  # another server's live call is left alone
    done = ivr(tmp_path, "db", "recover", "--db", str(db), "--all")
    assert "closed 1 calls" in done.stdout


def test_checks_catch_broken_rules(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite3"
    seed(db)
    store = Store(db)
    try:
        assert check_store(store) == []
        rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=None)
        rec.turn(TurnRecord("main_menu", "dtmf", "1", "x", None))
        store.execute(
            "INSERT INTO turns(call_id, seq, at, ask, mode) VALUES (?, 3, 0, 'a', 'b')",
            (rec.call_id,),
        )
        store.execute(
            "INSERT INTO agent_queue(call_id, created_at, reason, case_json)"
            " VALUES ('x', 0, 'r', '{}')"
        )
        store.execute("UPDATE otp_codes SET tries = 3")
        store.execute("UPDATE calls SET outcome = 'resolved' WHERE id = ?", (rec.call_id,))
        problems = "\n".join(check_store(store))
    finally:
        store.close()
    assert "turns of call" in problems and "expected seq 1..2, got 1..3" in problems
    assert "no case_work row" in problems
    assert "still live" in problems
    assert "an end time without an outcome" in problems
