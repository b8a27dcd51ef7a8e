"""`kill -9` of `ivr serve` under ten calls: the next start closes every call that was in
progress (abandoned, interrupted) with every turn it had, and nothing else changes; the
killed server's processes (recognition workers, grammar hosts, the voice) end with it."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from ivr.services.integrity import check_store
from ivr.services.store import Store
from tests.helpers import children, running
from tests.sip.peers import Ivr, Scenario, end_process, free_port, start_ivr, start_sipp
from tests.sip.test_sipp import FIXTURES
from tests.store.records import CODE_PHONE, LOCKED_PHONE, dump, seed

CALLS = 10
CLOSED_COLUMNS = ("ended_at", "outcome", "transfer_reason")


def _turn_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(
            conn.execute(
                "SELECT c.id, COUNT(t.seq) FROM calls c LEFT JOIN turns t ON t.call_id = c.id"
                " GROUP BY c.id"
            ).fetchall()
        )
    finally:
        conn.close()


def _wait_turns(server: Ivr, n_calls: int, n_turns: int, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = _turn_counts(server.db)
        if len(counts) >= n_calls and all(n >= n_turns for n in counts.values()):
            return
        time.sleep(0.3)
    raise AssertionError(
        f"expected {n_calls} calls with {n_turns} turns each, have {counts}\n"
        + server.log.read_text(errors="replace")[-3000:]
    )


def test_kill_9_under_ten_calls_loses_nothing(ivr_home: Path, tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    port = free_port()
    db = tmp_path / f"ivr-{port}.sqlite3"  # the database start_ivr gives the server
    seed(db)
    seeded = dump(db)
    args = ("--fixtures", str(fixtures), "--server-id", "ivr-a", "--max-calls", "20")
    server = start_ivr(ivr_home, tmp_path, *args, port=port)
    # each caller chooses account recovery, confirms the caller ID, then says nothing more
    scenario = Scenario().invite().keys("11").pause(120000).bye()
    sipp = start_sipp(scenario.xml(), server.port, tmp_path, calls=CALLS)
    try:
        _wait_turns(server, CALLS, 2, timeout=120)
        server.wait_log("speech recognition ready", 60)  # every process it starts, started
        helpers = children(server.proc.pid)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        sipp.kill()
        end_process(sipp)
        server.stop()

    # nothing of the killed server stays behind holding models or memory
    assert len(helpers) >= 3, helpers  # two Whisper workers and a grammar host at least
    deadline = time.monotonic() + 60  # a liveness bound, not a speed: they end at once
    while any(running(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in helpers if running(p)], "processes outlived the killed server"

    at_kill = dump(db)
    open_calls = [c for c in at_kill["calls"] if c["ended_at"] is None]
    assert len(open_calls) == CALLS
    assert all(c["server"] == "ivr-a" for c in open_calls)
    turns_at_kill = _turn_counts(db)

    restarted = start_ivr(ivr_home, tmp_path, *args, port=server.port)
    try:
        restarted.wait_log(f"closed {CALLS} calls left in progress", timeout=30)
    finally:
        assert restarted.stop() == 0
    after = dump(db)

    # every call that was in progress: closed, interrupted, ended at its last turn
    calls = {c["id"]: c for c in after["calls"]}
    for before in open_calls:
        call = calls[before["id"]]
        assert call["outcome"] == "abandoned" and call["transfer_reason"] == "interrupted"
        last_turn = max(t["at"] for t in after["turns"] if t["call_id"] == call["id"])
        assert call["ended_at"] >= last_turn and call["ended_at"] >= call["started_at"]
        untouched = {k: v for k, v in call.items() if k not in CLOSED_COLUMNS}
        assert untouched == {k: v for k, v in before.items() if k not in CLOSED_COLUMNS}
    # every turn up to the kill, unchanged: the first two of each call are the caller's keys
    assert _turn_counts(db) == turns_at_kill
    assert after["turns"] == at_kill["turns"] and after["transcript"] == at_kill["transcript"]
    for call_id in calls:
        asks = [(t["ask"], t["mode"]) for t in after["turns"] if t["call_id"] == call_id]
        assert asks[0] == ("main_menu", "dtmf"), asks
    # everything else is exactly as the kill left it, and what was there before is still there
    for table, rows in at_kill.items():
        if table != "calls":
            assert after[table] == rows, table
    for table, rows in seeded.items():
        if table != "schema_version":
            assert all(row in after[table] for row in rows), table
    assert any(
        a["phone"] == LOCKED_PHONE and a["recovery_locked_until"] > 0 for a in after["accounts"]
    )
    assert after["agent_queue"][0]["call_id"] == "before-crash"
    assert after["callbacks"][0]["status"] == "pending"
    assert [t["number"] for t in after["tickets"]] == ["20261120"]
    assert any(c["phone"] == CODE_PHONE and c["used"] == 0 for c in after["otp_codes"])
    store = Store(db)
    try:
        assert check_store(store) == []
    finally:
        store.close()
