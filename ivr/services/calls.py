"""Call records: every turn, every line of the transcript, the path and the outcome.

Each row is written the moment it happens, so a call cut off at any point (a
hang-up, a crash, a killed process) leaves everything collected so far.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ivr.services.privacy import mask_phone, scrub
from ivr.services.store import Store


class Outcome(enum.StrEnum):
    RESOLVED = "resolved"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    FAILED = "failed"


@dataclass
class TurnRecord:
    ask: str
    mode: str
    heard: str | None
    value: str | None
    confidence: float | None
    latency_ms: float | None = None
    # live calls: from the caller's last word to the reply (the endpointer's wait included)
    wait_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ask": self.ask,
            "mode": self.mode,
            "heard": self.heard,
            "value": self.value,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "wait_ms": None if self.wait_ms is None else round(self.wait_ms, 1),
        }


@dataclass
class CallRecord:
    id: str
    started_at: float
    ended_at: float | None
    channel: str
    locale: str
    caller_masked: str | None
    outcome: str | None
    transfer_reason: str | None
    intent: str | None
    ticket_team: str | None
    states: list[str]
    error: str | None
    patient: bool = False  # the call was in patient mode at some point
    turns: list[TurnRecord] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "channel": self.channel,
            "locale": self.locale,
            "caller": self.caller_masked,
            "outcome": self.outcome,
            "transfer_reason": self.transfer_reason,
            "intent": self.intent,
            "ticket_team": self.ticket_team,
            "states": self.states,
            "error": self.error,
            "patient": self.patient,
            "turns": [t.as_dict() for t in self.turns],
            "transcript": self.transcript,
        }


class CallRecorder:
    """Writes one call's record as it goes."""

    def __init__(
        self,
        store: Store,
        *,
        channel: str,
        locale: str,
        caller_id: str | None,
        observer: Callable[[str, dict[str, Any]], None] | None = None,
        server: str | None = None,
        caller_key: str | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self.call_id = uuid.uuid4().hex[:16]
        self.states: list[str] = []
        self._turn_seq = 0
        self._line_seq = 0
        self.turns: list[TurnRecord] = []
        self.finished = False
        store.execute(
            "INSERT INTO calls(id, started_at, channel, locale, caller_masked, server, caller_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.call_id, time.time(), channel, locale, mask_phone(caller_id), server, caller_key),
        )

    def state(self, name: str) -> None:
        self.states.append(name)
        self.store.execute(
            "UPDATE calls SET states = ? WHERE id = ?", (json.dumps(self.states), self.call_id)
        )

    def set(self, **fields: Any) -> None:
        allowed = {"intent", "ticket_team", "error", "account_key", "patient"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"expected fields among {sorted(allowed)}, got {sorted(bad)}")
        with self.store.transaction() as conn:
            for key, value in fields.items():
                conn.execute(f"UPDATE calls SET {key} = ? WHERE id = ?", (value, self.call_id))

    def line(self, speaker: str, text: str) -> None:
        self._line_seq += 1
        self.store.execute(
            "INSERT INTO transcript(call_id, seq, at, speaker, text) VALUES (?, ?, ?, ?, ?)",
            (self.call_id, self._line_seq, time.time(), speaker, scrub(text)),
        )
        if self.observer is not None:
            self.observer("line", {"speaker": speaker, "text": scrub(text)})

    def turn(self, record: TurnRecord) -> None:
        self._turn_seq += 1
        self.turns.append(record)
        self.store.execute(
            "INSERT INTO turns(call_id, seq, at, ask, mode, heard, value, confidence, latency_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.call_id,
                self._turn_seq,
                time.time(),
                record.ask,
                record.mode,
                None if record.heard is None else scrub(record.heard),
                None if record.value is None else scrub(record.value),
                record.confidence,
                record.latency_ms,
            ),
        )
        if self.observer is not None:
            self.observer("turn", record.as_dict())

    def turn_latency(self, latency_ms: float, wait_ms: float | None = None) -> None:
        if not self.turns:
            return
        self.turns[-1].latency_ms = latency_ms
        self.turns[-1].wait_ms = wait_ms
        self.store.execute(
            "UPDATE turns SET latency_ms = ?, wait_ms = ? WHERE call_id = ? AND seq = ?",
            (latency_ms, wait_ms, self.call_id, self._turn_seq),
        )

    def finish(
        self, outcome: Outcome, *, reason: str | None = None, error: str | None = None
    ) -> None:
        if self.finished:
            return
        self.finished = True
        self.store.execute(
            "UPDATE calls SET ended_at = ?, outcome = ?, transfer_reason = ?,"
            " error = COALESCE(?, error) WHERE id = ?",
            (time.time(), str(outcome), reason, error, self.call_id),
        )


INTERRUPTED = "interrupted"


def recover_interrupted(
    store: Store, *, server: str | None = None, started_before: float | None = None
) -> list[str]:
    """Close the calls a killed process left in progress; the ids closed.

    Each becomes ``abandoned`` with reason ``interrupted``, ended at the last moment it
    wrote (its last turn or transcript line); its turns, transcript, queued case, ticket and
    codes are kept as they are. ``server`` limits this to the calls one server answered
    (and calls from releases that did not name their server), so a restarted server never
    closes the live calls of another one sharing the store; ``started_before`` spares the
    calls this process has begun since it started.
    """
    where = "c.ended_at IS NULL"
    params: list[Any] = []
    if server is not None:
        where += " AND (c.server = ? OR c.server IS NULL)"
        params.append(server)
    if started_before is not None:
        where += " AND c.started_at < ?"
        params.append(started_before)
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT c.id, c.started_at,"
            " (SELECT MAX(t.at) FROM turns t WHERE t.call_id = c.id) AS last_turn,"
            " (SELECT MAX(x.at) FROM transcript x WHERE x.call_id = c.id) AS last_line"
            f" FROM calls c WHERE {where} ORDER BY c.started_at",
            tuple(params),
        ).fetchall()
        for row in rows:
            last = max(row["started_at"], row["last_turn"] or 0.0, row["last_line"] or 0.0)
            conn.execute(
                "UPDATE calls SET ended_at = ?, outcome = ?, transfer_reason = ?"
                " WHERE id = ? AND ended_at IS NULL",
                (last, str(Outcome.ABANDONED), INTERRUPTED, row["id"]),
            )
    return [str(r["id"]) for r in rows]


def load_call(store: Store, call_id: str) -> CallRecord | None:
    rows = store.query("SELECT * FROM calls WHERE id = ? OR id LIKE ?", (call_id, f"{call_id}%"))
    if not rows:
        return None
    return _record(store, rows[0])


def list_calls(store: Store, limit: int = 50) -> list[CallRecord]:
    rows = store.query("SELECT * FROM calls ORDER BY started_at DESC LIMIT ?", (limit,))
    return [_record(store, r, details=False) for r in rows]


def _record(store: Store, r: Any, *, details: bool = True) -> CallRecord:
    rec = CallRecord(
        id=r["id"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        channel=r["channel"],
        locale=r["locale"],
        caller_masked=r["caller_masked"],
        outcome=r["outcome"],
        transfer_reason=r["transfer_reason"],
        intent=r["intent"],
        ticket_team=r["ticket_team"],
        states=json.loads(r["states"]),
        error=r["error"],
        patient=bool(r["patient"]),
    )
    if details:
        rec.turns = [
            TurnRecord(
                t["ask"],
                t["mode"],
                t["heard"],
                t["value"],
                t["confidence"],
                t["latency_ms"],
                t["wait_ms"],
            )
            for t in store.query("SELECT * FROM turns WHERE call_id = ? ORDER BY seq", (rec.id,))
        ]
        rec.transcript = [
            {"at": t["at"], "speaker": t["speaker"], "text": t["text"]}
            for t in store.query(
                "SELECT * FROM transcript WHERE call_id = ? ORDER BY seq", (rec.id,)
            )
        ]
    return rec
