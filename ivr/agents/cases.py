"""The work on queued cases: the live queue, claims, notes, resolutions, callbacks, audit.

Every change writes a row in ``desk_events``; the desk (another process) follows that table
to push updates to the browsers. Claims are one conditional UPDATE, so two agents can never
both hold the same case. The caller's full number is read only through :meth:`reveal`, by the
agent who holds the case, and each reveal is written to the audit log.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

from ivr.agents.directory import Agent, AgentState, Directory
from ivr.services.calls import CallRecord, load_call
from ivr.services.privacy import scrub
from ivr.services.store import Store


class CaseStatus(enum.StrEnum):
    WAITING = "waiting"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class CaseOutcome(enum.StrEnum):
    SOLVED = "solved"
    TICKET_OPENED = "ticket_opened"
    CALLER_UNREACHABLE = "caller_unreachable"
    OTHER = "other"


class CallbackStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class CallbackWindow(enum.StrEnum):
    """When the caller asked to be called back (keys 1, 2, 3 on the phone)."""

    ASAP = "asap"
    AFTERNOON = "afternoon"
    TOMORROW_MORNING = "tomorrow_morning"


WINDOW_LABELS: Final = {
    CallbackWindow.ASAP: "as soon as possible",
    CallbackWindow.AFTERNOON: "this afternoon",
    CallbackWindow.TOMORROW_MORNING: "tomorrow morning",
}


@dataclass(frozen=True)
class CaseSummary:
    id: int
    call_id: str
    status: CaseStatus
    reason: str
    locale: str
    created_at: float
    waited_s: float
    position: int | None
    verified: bool
    caller: str | None  # masked
    assigned_to: str | None
    claimed_by: str | None
    claimed_by_id: int | None
    outcome: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "status": str(self.status),
            "reason": self.reason,
            "language": self.locale,
            "waited_seconds": round(self.waited_s, 1),
            "position": self.position,
            "verified": self.verified,
            "caller": self.caller,
            "assigned_to": self.assigned_to,
            "claimed_by": self.claimed_by,
            "outcome": self.outcome,
        }


@dataclass
class CaseDetail:
    summary: CaseSummary
    case: dict[str, Any]
    call: CallRecord | None
    notes: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    callback: dict[str, Any] | None = None
    ticket_number: str | None = None


@dataclass(frozen=True)
class Callback:
    queue_id: int
    call_id: str
    created_at: float
    status: CallbackStatus
    position: int | None
    reason: str
    caller: str | None
    agent: str | None
    note: str | None
    window: CallbackWindow | None = None  # None: the caller chose none (as soon as possible)

    @property
    def window_label(self) -> str:
        return WINDOW_LABELS[self.window or CallbackWindow.ASAP]


_SUMMARY_SQL = """
SELECT q.id, q.call_id, q.created_at, q.reason, q.status,
       json_extract(q.case_json, '$.verified') AS verified,
       json_extract(q.case_json, '$.caller') AS caller,
       c.locale, w.claimed_at, w.resolved_at, w.outcome, w.claimed_by,
       a1.name AS assigned_name, a2.name AS claimed_name
FROM agent_queue q
LEFT JOIN calls c ON c.id = q.call_id
LEFT JOIN case_work w ON w.queue_id = q.id
LEFT JOIN agents a1 ON a1.id = w.assigned_to
LEFT JOIN agents a2 ON a2.id = w.claimed_by
"""


class CaseDesk:
    """The cases as agents and supervisors work them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.directory = Directory(store)

    # --- reading -------------------------------------------------------------------------------
    def cases(self, status: CaseStatus | None = None, *, limit: int = 500) -> list[CaseSummary]:
        now = time.time()
        where, params = ("WHERE q.status = ?", (str(status),)) if status else ("", ())
        order = "q.id" if status is CaseStatus.WAITING else "q.id DESC"
        rows = self.store.query(
            f"{_SUMMARY_SQL} {where} ORDER BY {order} LIMIT ?", (*params, limit)
        )
        first = self._first_waiting_position()
        out = []
        for r in rows:
            position = None
            if r["status"] == CaseStatus.WAITING:
                position = first.get(int(r["id"]))
            out.append(self._summary(r, now, position))
        return out

    def summary(self, queue_id: int) -> CaseSummary | None:
        rows = self.store.query(f"{_SUMMARY_SQL} WHERE q.id = ?", (queue_id,))
        if not rows:
            return None
        position = self._first_waiting_position().get(queue_id)
        return self._summary(rows[0], time.time(), position)

    def detail(self, queue_id: int) -> CaseDetail | None:
        rows = self.store.query(
            "SELECT call_id, case_json FROM agent_queue WHERE id = ?", (queue_id,)
        )
        if not rows:
            return None
        summary = self.summary(queue_id)
        assert summary is not None
        call_id = rows[0]["call_id"]
        notes = [
            {"at": n["at"], "agent": n["name"], "text": n["text"]}
            for n in self.store.query(
                "SELECT n.at, n.text, a.name FROM case_notes n JOIN agents a ON a.id = n.agent_id"
                " WHERE n.queue_id = ? ORDER BY n.id",
                (queue_id,),
            )
        ]
        tickets = [
            {"number": t["number"], "team": t["team"], "status": t["status"]}
            for t in self.store.query(
                "SELECT number, team, status FROM tickets WHERE call_id = ? ORDER BY created_at",
                (call_id,),
            )
        ]
        feedback = [
            {
                "id": f["id"],
                "category": f["category"],
                "transcript": f["transcript"],
                "has_audio": bool(f["audio_path"]),
            }
            for f in self.store.query(
                "SELECT id, category, transcript, audio_path FROM feedback WHERE call_id = ?",
                (call_id,),
            )
        ]
        work = self.store.query(
            "SELECT ticket_number FROM case_work WHERE queue_id = ?", (queue_id,)
        )
        cb = self.store.query("SELECT * FROM callbacks WHERE queue_id = ?", (queue_id,))
        return CaseDetail(
            summary=summary,
            case=json.loads(rows[0]["case_json"]),
            call=load_call(self.store, call_id) if call_id else None,
            notes=notes,
            tickets=tickets,
            feedback=feedback,
            callback=dict(cb[0]) if cb else None,
            ticket_number=work[0]["ticket_number"] if work else None,
        )

    def transcripts(self, queue_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The hand-off transcript of each case (as the IVR passed it on), long digit runs
        masked as in the call records."""
        if not queue_ids:
            return {}
        rows = self.store.query(
            "SELECT id, json_extract(case_json, '$.transcript') AS t FROM agent_queue"
            f" WHERE id IN ({', '.join('?' * len(queue_ids))})",
            tuple(queue_ids),
        )
        return {
            int(r["id"]): [
                {"speaker": line.get("speaker"), "text": scrub(str(line.get("text", "")))}
                for line in json.loads(r["t"] or "[]")
            ]
            for r in rows
        }

    def feedback_audio(self, feedback_id: int) -> str | None:
        rows = self.store.query("SELECT audio_path FROM feedback WHERE id = ?", (feedback_id,))
        return rows[0]["audio_path"] if rows else None

    # --- work on a case ----------------------------------------------------------------------
    def assign(self, queue_id: int, agent_id: int | None) -> None:
        """The router offers the case to an agent (their desk pops it); None takes it back."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE case_work SET assigned_to = ? WHERE queue_id = ?", (agent_id, queue_id)
            )
            self._event_in(conn, "assigned" if agent_id else "unassigned", queue_id, agent_id)

    def claim(self, queue_id: int, agent: Agent) -> bool:
        """Take a waiting case; False when it is not waiting (someone else holds it) or the
        router is offering it to another agent's phone right now."""
        now = time.time()
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE agent_queue SET status = ? WHERE id = ? AND status = ?"
                " AND NOT EXISTS (SELECT 1 FROM case_work w WHERE w.queue_id = agent_queue.id"
                " AND w.assigned_to IS NOT NULL AND w.assigned_to != ?)",
                (str(CaseStatus.CLAIMED), queue_id, str(CaseStatus.WAITING), agent.id),
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                "INSERT INTO case_work(queue_id) VALUES (?) ON CONFLICT(queue_id) DO NOTHING",
                (queue_id,),
            )
            conn.execute(
                "UPDATE case_work SET claimed_by = ?, claimed_at = ? WHERE queue_id = ?",
                (agent.id, now, queue_id),
            )
            self._audit(conn, agent.id, "claim", queue_id)
            self._event_in(conn, "claimed", queue_id, agent.id)
        return True

    def holder(self, queue_id: int) -> int | None:
        rows = self.store.query("SELECT claimed_by FROM case_work WHERE queue_id = ?", (queue_id,))
        return int(rows[0]["claimed_by"]) if rows and rows[0]["claimed_by"] else None

    def reveal(self, queue_id: int, agent: Agent) -> str | None:
        """The caller's full number, to the agent who holds the case only; audited."""
        rows = self.store.query(
            "SELECT w.caller_number, w.claimed_by FROM case_work w WHERE w.queue_id = ?",
            (queue_id,),
        )
        if not rows or rows[0]["claimed_by"] != agent.id:
            return None
        with self.store.transaction() as conn:
            self._audit(conn, agent.id, "reveal_number", queue_id)
        number: str | None = rows[0]["caller_number"]
        return number

    def add_note(self, queue_id: int, agent: Agent, text: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO case_notes(queue_id, agent_id, at, text) VALUES (?, ?, ?, ?)",
                (queue_id, agent.id, time.time(), text),
            )
            self._event_in(conn, "note", queue_id, agent.id)

    def resolve(self, queue_id: int, agent: Agent, outcome: CaseOutcome) -> bool:
        """Close a case held by ``agent`` (a supervisor may close any); the agent wraps up."""
        with self.store.transaction() as conn:
            holder = conn.execute(
                "SELECT claimed_by FROM case_work WHERE queue_id = ?", (queue_id,)
            ).fetchone()
            if holder is None or (holder["claimed_by"] != agent.id and not agent.is_supervisor):
                return False
            cur = conn.execute(
                "UPDATE agent_queue SET status = ? WHERE id = ? AND status = ?",
                (str(CaseStatus.RESOLVED), queue_id, str(CaseStatus.CLAIMED)),
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                "UPDATE case_work SET resolved_at = ?, outcome = ? WHERE queue_id = ?",
                (time.time(), str(outcome), queue_id),
            )
            self._audit(conn, agent.id, "resolve", queue_id, str(outcome))
            self._event_in(conn, "resolved", queue_id, agent.id)
        self.directory.set_state(agent.id, AgentState.WRAP_UP, only_from=(AgentState.ON_CALL,))
        return True

    def link_ticket(self, queue_id: int, agent: Agent, number: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE case_work SET ticket_number = ? WHERE queue_id = ?", (number, queue_id)
            )
            self._audit(conn, agent.id, "ticket", queue_id, number)
            self._event_in(conn, "ticket", queue_id, agent.id)

    def caller_number(self, queue_id: int) -> str | None:
        """For opening a ticket from the case (the number goes to the ticket, never a page)."""
        rows = self.store.query(
            "SELECT caller_number FROM case_work WHERE queue_id = ?", (queue_id,)
        )
        return rows[0]["caller_number"] if rows else None

    # --- callbacks -------------------------------------------------------------------------------
    def promise_callback(self, queue_id: int, *, window: CallbackWindow | None = None) -> None:
        """The caller was told an agent will call back: the case joins the callback list;
        ``window``, when the caller chose when (a promise made before keeps its place)."""
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO callbacks(queue_id, created_at, call_window) VALUES (?, ?, ?)"
                " ON CONFLICT(queue_id) DO UPDATE SET"
                " call_window = COALESCE(excluded.call_window, callbacks.call_window)",
                (queue_id, time.time(), None if window is None else str(window)),
            )
            self._event_in(conn, "callback", queue_id, None)

    def callbacks(self) -> list[Callback]:
        rows = self.store.query(
            "SELECT b.*, q.call_id, q.reason, q.case_json, a.name FROM callbacks b"
            " JOIN agent_queue q ON q.id = b.queue_id LEFT JOIN agents a ON a.id = b.agent_id"
            " ORDER BY b.status != 'pending', b.created_at, b.queue_id"
        )
        out, place = [], 0
        for r in rows:
            pending = r["status"] == CallbackStatus.PENDING
            place += pending
            out.append(
                Callback(
                    queue_id=int(r["queue_id"]),
                    call_id=r["call_id"],
                    created_at=r["created_at"],
                    status=CallbackStatus(r["status"]),
                    position=place if pending else None,
                    reason=r["reason"],
                    caller=json.loads(r["case_json"]).get("caller"),
                    agent=r["name"],
                    note=r["note"],
                    window=CallbackWindow(r["call_window"]) if r["call_window"] else None,
                )
            )
        return out

    def finish_callback(
        self, queue_id: int, agent: Agent, status: CallbackStatus, note: str
    ) -> bool:
        if status is CallbackStatus.PENDING:
            raise ValueError("expected done or failed, got pending")
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE callbacks SET status = ?, agent_id = ?, note = ?, done_at = ?"
                " WHERE queue_id = ? AND status = 'pending'",
                (str(status), agent.id, note, time.time(), queue_id),
            )
            if cur.rowcount != 1:
                return False
            self._audit(conn, agent.id, f"callback_{status}", queue_id)
            self._event_in(conn, "callback", queue_id, agent.id)
        return True

    # --- the audit log and the event feed ---------------------------------------------------
    def audit_log(self, queue_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT d.*, a.name FROM desk_audit d LEFT JOIN agents a ON a.id = d.agent_id"
        params: tuple[Any, ...] = ()
        if queue_id is not None:
            sql += " WHERE d.queue_id = ?"
            params = (queue_id,)
        return [dict(r) for r in self.store.query(sql + " ORDER BY d.id", params)]

    def record(self, agent_id: int | None, action: str, detail: str | None = None) -> None:
        """An audit entry that belongs to no case (log-in, log-out, export)."""
        with self.store.transaction() as conn:
            self._audit(conn, agent_id, action, None, detail)

    def last_event(self) -> int:
        rows = self.store.query("SELECT COALESCE(MAX(id), 0) AS n FROM desk_events")
        return int(rows[0]["n"])

    def events_after(self, event_id: int) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT * FROM desk_events WHERE id > ? ORDER BY id LIMIT 200", (event_id,)
        )
        return [dict(r) for r in rows]

    # --- helpers -----------------------------------------------------------------------------
    def _first_waiting_position(self) -> dict[int, int]:
        rows = self.store.query("SELECT id FROM agent_queue WHERE status = 'waiting' ORDER BY id")
        return {int(r["id"]): n for n, r in enumerate(rows, 1)}

    @staticmethod
    def _summary(r: Any, now: float, position: int | None) -> CaseSummary:
        status = CaseStatus(r["status"])
        until = now if status is CaseStatus.WAITING else (r["claimed_at"] or now)
        return CaseSummary(
            id=int(r["id"]),
            call_id=r["call_id"],
            status=status,
            reason=r["reason"],
            locale=r["locale"] or "",
            created_at=r["created_at"],
            waited_s=max(0.0, until - r["created_at"]),
            position=position,
            verified=r["verified"] in (1, True, "1", "true"),  # SQLite 1, PostgreSQL "true"
            caller=r["caller"],
            assigned_to=r["assigned_name"],
            claimed_by=r["claimed_name"],
            claimed_by_id=r["claimed_by"],
            outcome=r["outcome"],
        )

    @staticmethod
    def _event_in(conn: Any, kind: str, queue_id: int | None, agent_id: int | None) -> None:
        conn.execute(
            "INSERT INTO desk_events(at, kind, queue_id, agent_id) VALUES (?, ?, ?, ?)",
            (time.time(), kind, queue_id, agent_id),
        )

    @staticmethod
    def _audit(
        conn: Any,
        agent_id: int | None,
        action: str,
        queue_id: int | None,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO desk_audit(at, agent_id, action, queue_id, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), agent_id, action, queue_id, detail),
        )
