"""The agent queue: transferred calls wait here with their whole case."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from ivr.services.store import Store


@dataclass(frozen=True)
class QueuedCase:
    """A case just put in the queue: its row and the call it belongs to."""

    id: int
    call_id: str


class AgentQueue:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._local = threading.local()

    def enqueue(
        self, call_id: str, reason: str, case: dict[str, Any], *, caller: str | None = None
    ) -> int:
        """Add a hand-off case; returns the caller's position in line (1 = next).

        ``caller`` is the full number, kept apart from the (masked) case for the one agent
        who claims it. The case is also remembered for the calling thread (the call's own),
        so the channel's transfer that follows can route this very case (:meth:`current`).
        """
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO agent_queue(call_id, created_at, reason, case_json)"
                " VALUES (?, ?, ?, ?)",
                (call_id, time.time(), reason, json.dumps(case, ensure_ascii=False)),
            )
            queue_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO case_work(queue_id, caller_number) VALUES (?, ?)", (queue_id, caller)
            )
            conn.execute(
                "INSERT INTO desk_events(at, kind, queue_id) VALUES (?, 'queued', ?)",
                (time.time(), queue_id),
            )
            n = conn.execute(
                "SELECT COUNT(*) AS n FROM agent_queue WHERE status = 'waiting' AND id <= ?",
                (queue_id,),
            ).fetchone()["n"]
        self._local.case = QueuedCase(queue_id, call_id)
        return int(n)

    def current(self) -> QueuedCase | None:
        """The case this thread's call queued last (None when it queued none)."""
        case: QueuedCase | None = getattr(self._local, "case", None)
        return case

    def waiting(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM agent_queue WHERE status = 'waiting' ORDER BY id")
        return [
            {
                "id": r["id"],
                "call_id": r["call_id"],
                "reason": r["reason"],
                "created_at": r["created_at"],
                "case": json.loads(r["case_json"]),
            }
            for r in rows
        ]

    def case_for(self, call_id: str) -> dict[str, Any] | None:
        rows = self.store.query("SELECT case_json FROM agent_queue WHERE call_id = ?", (call_id,))
        return json.loads(rows[0]["case_json"]) if rows else None
