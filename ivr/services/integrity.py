"""Checks that a store is sound: SQLite's own, then the rules the services keep.

Each multi-row change is one transaction, so whatever instant a process dies at, these
hold. ``ivr db check`` runs them; the crash tests run them after every kill.
"""

from __future__ import annotations

from ivr.services.codes import MAX_TRIES
from ivr.services.store import Store


def check_store(store: Store) -> list[str]:
    """What is wrong with the store (an empty list when it is sound)."""
    problems: list[str] = []
    if store.engine == "sqlite":  # PostgreSQL checks its pages and foreign keys itself
        for row in store.query("PRAGMA integrity_check"):
            if row[0] != "ok":
                problems.append(f"integrity: {row[0]}")
        for row in store.query("PRAGMA foreign_key_check"):
            problems.append(f"foreign key: {row[0]} row {row[1]} points to a missing {row[2]} row")
    for table in ("turns", "transcript"):
        for row in store.query(
            f"SELECT call_id, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM {table}"
            " GROUP BY call_id HAVING MIN(seq) != 1 OR MAX(seq) != COUNT(*)"
        ):
            problems.append(
                f"{table} of call {row['call_id']}: expected seq 1..{row['n']},"
                f" got {row['lo']}..{row['hi']}"
            )
    for row in store.query("SELECT id FROM calls WHERE (ended_at IS NULL) != (outcome IS NULL)"):
        problems.append(f"call {row['id']}: an end time without an outcome, or the reverse")
    for row in store.query(
        "SELECT t.number, t.status, (SELECT h.status FROM ticket_history h"
        " WHERE h.number = t.number ORDER BY h.id DESC LIMIT 1) AS last FROM tickets t"
    ):
        if row["last"] is None:
            problems.append(f"ticket {row['number']}: no history")
        elif row["last"] != row["status"]:
            problems.append(
                f"ticket {row['number']}: status {row['status']}, last history {row['last']}"
            )
    for row in store.query(
        "SELECT q.id FROM agent_queue q LEFT JOIN case_work w ON w.queue_id = q.id"
        " WHERE w.queue_id IS NULL"
    ):
        problems.append(f"queued case {row['id']}: no case_work row")
    for row in store.query(
        "SELECT phone, COUNT(*) AS n FROM otp_codes WHERE used = 0 GROUP BY phone"
        " HAVING COUNT(*) > 1"
    ):
        problems.append(f"codes: {row['n']} live codes for one number (expected at most 1)")
    for row in store.query(
        "SELECT c.id, a.recovery_locked_until AS until, c.issued_at FROM otp_codes c"
        " LEFT JOIN accounts a ON a.phone = c.phone WHERE c.tries >= ?",
        (MAX_TRIES,),
    ):
        if row["until"] is not None and row["until"] < row["issued_at"]:
            problems.append(f"code {row['id']}: {MAX_TRIES} wrong tries, account not locked")
    for row in store.query(f"SELECT id FROM otp_codes WHERE tries >= {MAX_TRIES} AND used = 0"):
        problems.append(f"code {row['id']}: {MAX_TRIES} wrong tries, still live")
    return problems
