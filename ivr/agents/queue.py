"""The agent queue: transferred calls wait here with their whole case."""

from __future__ import annotations

import json
import time
from typing import Any

from ivr.services.store import Store


class AgentQueue:
    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, call_id: str, reason: str, case: dict[str, Any]) -> int:
        """Add a hand-off case; returns the caller's position in line (1 = next)."""
        self.store.execute(
            "INSERT INTO agent_queue(call_id, created_at, reason, case_json) VALUES (?, ?, ?, ?)",
            (call_id, time.time(), reason, json.dumps(case, ensure_ascii=False)),
        )
        return int(
            self.store.query("SELECT COUNT(*) AS n FROM agent_queue WHERE status = 'waiting'")[0][
                "n"
            ]
        )

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
