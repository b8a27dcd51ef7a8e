"""Records every kind of service writes, put in a store before a crash, and a dump of a
database's tables to compare before and after."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ivr.agents.cases import CaseDesk
from ivr.agents.queue import AgentQueue
from ivr.services.accounts import Accounts
from ivr.services.codes import Codes, SmsOutbox
from ivr.services.store import Store
from ivr.services.tickets import Tickets

LOCKED_PHONE = "13912345678"
CODE_PHONE = "14155550123"


def seed(db: Path) -> None:
    """A ticket, a queued case with a promised callback, a lock-out and a live code."""
    store = Store(db)
    try:
        accounts = Accounts(store)
        accounts.seed_demo()
        accounts.lock_recovery(LOCKED_PHONE, time.time() + 1800)
        outbox = SmsOutbox(store)
        Tickets(store, outbox).seed(
            {"number": "20261120", "team": "content_review", "status": "open"}
        )
        queue_id = AgentQueue(store).enqueue(
            "before-crash", "caller_request", {"intent": "agent"}, caller=CODE_PHONE
        )
        CaseDesk(store).promise_callback(queue_id)
        Codes(store, accounts, outbox, fixed_code="135790").issue(CODE_PHONE)
    finally:
        store.close()


def dump(db: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, by table."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in tables
        }
    finally:
        conn.close()
