"""A process writing through the services is killed (SIGKILL) at random instants, again and
again: after each kill the store passes SQLite's integrity check and the services' rules,
and everything committed before the kill is still there."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ivr.services.calls import recover_interrupted
from ivr.services.integrity import check_store
from ivr.services.store import Store
from tests.store.records import dump

KILLS = 12
TABLES = (
    "calls",
    "turns",
    "transcript",
    "otp_codes",
    "sms_outbox",
    "tickets",
    "ticket_history",
    "agent_queue",
    "case_work",
    "callbacks",
    "desk_events",
)


def _start_writer(db: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store.writer", str(db), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent.parent,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the writer has opened the store and begun
    if line.strip() != "writing":
        proc.kill()
        _, err = proc.communicate(10)
        raise AssertionError(f"the writer did not start: {line!r} {err}")
    return proc


def test_kill_at_random_points_leaves_a_sound_store(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite3"
    rng = random.Random(20261130)
    previous: dict[str, list[dict[str, object]]] = {t: [] for t in TABLES}
    for seed in range(KILLS):
        proc = _start_writer(db, seed)
        try:
            time.sleep(rng.uniform(0.02, 0.8))  # an arbitrary instant of its work
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.communicate(10)
        assert proc.returncode == -signal.SIGKILL

        store = Store(db)
        try:
            assert check_store(store) == [], f"after kill {seed}"
            recover_interrupted(store, server="w")
            assert check_store(store) == [], f"after recovery {seed}"
            open_calls = store.query("SELECT COUNT(*) AS n FROM calls WHERE ended_at IS NULL")
            assert open_calls[0]["n"] == 0
        finally:
            store.close()
        now = dump(db)
        for table in TABLES:  # nothing committed before is lost or rewritten (but calls closed)
            if table == "calls":
                ids = {r["id"] for r in now["calls"]}
                assert {r["id"] for r in previous["calls"]} <= ids
            elif table not in ("tickets", "callbacks", "case_work", "otp_codes"):
                assert now[table][: len(previous[table])] == previous[table], table
            else:
                assert len(now[table]) >= len(previous[table]), table
        previous = {t: now[t] for t in TABLES}
    assert len(previous["calls"]) >= KILLS  # the writers got somewhere
