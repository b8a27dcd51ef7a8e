"""`kill -9` of `ivr serve` on PostgreSQL with calls in progress: the restart closes them
(abandoned, interrupted) with every turn they had."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ivr.services.store import open_store
from tests.sip.peers import Scenario, end_process, free_port, start_ivr, start_sipp
from tests.sip.test_sipp import FIXTURES

CALLS = 5


def _turns(dsn: str, home: Path) -> dict[str, int]:
    store = open_store(dsn, home=home)
    try:
        rows = store.query(
            "SELECT c.id, COUNT(t.seq) AS n FROM calls c LEFT JOIN turns t ON t.call_id = c.id"
            " GROUP BY c.id"
        )
        return {r["id"]: int(r["n"]) for r in rows}
    finally:
        store.close()


def test_kill_9_on_postgresql(ivr_home: Path, tmp_path: Path, pg_dsn: str) -> None:
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    port = free_port()
    args = ("--db", pg_dsn, "--fixtures", str(fixtures), "--server-id", "pg-a")
    server = start_ivr(ivr_home, tmp_path, *args, port=port)
    sipp = start_sipp(
        Scenario().invite().keys("11").pause(120000).bye().xml(), port, tmp_path, calls=CALLS
    )
    try:
        deadline = time.monotonic() + 120
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = _turns(pg_dsn, tmp_path)
            if len(counts) >= CALLS and all(n >= 2 for n in counts.values()):
                break
            time.sleep(0.5)
        assert len(counts) == CALLS and all(n >= 2 for n in counts.values()), counts
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        sipp.kill()
        end_process(sipp)
        server.stop()
    at_kill = _turns(pg_dsn, tmp_path)
    restarted = start_ivr(ivr_home, tmp_path, *args, port=port)
    try:
        restarted.wait_log(f"closed {CALLS} calls left in progress", timeout=30)
    finally:
        assert restarted.stop() == 0
    assert _turns(pg_dsn, tmp_path) == at_kill
    store = open_store(pg_dsn, home=tmp_path)
    try:
        rows = store.query("SELECT outcome, transfer_reason, ended_at FROM calls")
    finally:
        store.close()
    assert len(rows) == CALLS
    assert all(
        r["outcome"] == "abandoned" and r["transfer_reason"] == "interrupted" and r["ended_at"]
        for r in rows
    )
