"""Review tickets: routed to a back-office team, followed until resolved, caller told by text.

Ticket numbers are 8 random digits (never sequential, so one number tells nothing about
another). Every change is kept in ``ticket_history``; creating a ticket and resolving it
each put a text message to the caller in the outbox.
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final

from ivr.errors import IvrError
from ivr.services.codes import SmsOutbox
from ivr.services.privacy import mask_phone
from ivr.services.store import Store

log = logging.getLogger(__name__)

NUMBER_DIGITS: Final = 8
TEAMS: Final = ("content_review", "product", "operations", "accounts")
MAX_NUMBER_TRIES: Final = 50


class Status(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


# Allowed moves: a resolved ticket may be reopened if the team finds more to do.
MOVES: Final = {
    Status.OPEN: {Status.IN_PROGRESS, Status.RESOLVED},
    Status.IN_PROGRESS: {Status.OPEN, Status.RESOLVED},
    Status.RESOLVED: {Status.IN_PROGRESS},
}


class TicketError(IvrError):
    """A ticket command that cannot be carried out (unknown number, bad status move)."""


@dataclass(frozen=True)
class Change:
    at: float
    status: str
    note: str


@dataclass
class Ticket:
    number: str
    team: str
    status: Status
    created_at: float
    updated_at: float
    caller: str | None
    call_id: str | None
    locale: str
    details: dict[str, Any]
    resolution: str | None = None
    history: list[Change] = field(default_factory=list)

    def as_dict(self, *, masked: bool = True) -> dict[str, Any]:
        return {
            "number": self.number,
            "team": self.team,
            "status": str(self.status),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "caller": mask_phone(self.caller) if masked else self.caller,
            "call_id": self.call_id,
            "locale": self.locale,
            "details": self.details,
            "resolution": self.resolution,
            "history": [{"at": c.at, "status": c.status, "note": c.note} for c in self.history],
        }


@dataclass(frozen=True)
class Messages:
    """Text-message bodies (from the locale's prompts) with {number} and {resolution}."""

    created: str
    resolved: str


class Tickets:
    def __init__(self, store: Store, outbox: SmsOutbox) -> None:
        self.store = store
        self.outbox = outbox

    def create(
        self,
        team: str,
        details: dict[str, Any],
        *,
        caller: str | None,
        locale: str,
        messages: Messages | None = None,
        call_id: str | None = None,
    ) -> Ticket:
        if team not in TEAMS:
            raise TicketError(f"unknown team {team!r}; expected one of {', '.join(TEAMS)}")
        now = time.time()
        for _ in range(MAX_NUMBER_TRIES):
            number = (
                f"{secrets.randbelow(9 * 10 ** (NUMBER_DIGITS - 1)) + 10 ** (NUMBER_DIGITS - 1)}"
            )
            try:
                with self.store.transaction() as conn:
                    conn.execute(
                        "INSERT INTO tickets(number, team, status, created_at, updated_at, caller,"
                        " call_id, locale, details_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            number,
                            team,
                            str(Status.OPEN),
                            now,
                            now,
                            caller,
                            call_id,
                            locale,
                            json.dumps(details, ensure_ascii=False),
                        ),
                    )
                    conn.execute(
                        "INSERT INTO ticket_history(number, at, status, note) VALUES (?, ?, ?, ?)",
                        (number, now, str(Status.OPEN), f"created for {team}"),
                    )
                    if caller and messages is not None:  # the ticket and its text together
                        self.outbox.send(
                            caller, messages.created.format(number=number), kind="ticket"
                        )
                break
            except self.store.IntegrityError:
                continue  # the random number is taken: draw another
        else:  # pragma: no cover - 50 collisions among 90 million numbers
            raise TicketError("could not draw a free ticket number")
        log.info("ticket %s created for %s, caller %s", number, team, mask_phone(caller))
        ticket = self.get(number)
        assert ticket is not None
        return ticket

    def get(self, number: str) -> Ticket | None:
        rows = self.store.query("SELECT * FROM tickets WHERE number = ?", (number,))
        if not rows:
            return None
        history = [
            Change(h["at"], h["status"], h["note"])
            for h in self.store.query(
                "SELECT at, status, note FROM ticket_history WHERE number = ? ORDER BY id",
                (number,),
            )
        ]
        return _ticket(rows[0], history)

    def list(
        self, *, team: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Ticket]:
        sql, params = "SELECT * FROM tickets WHERE 1 = 1", []
        if team:
            sql += " AND team = ?"
            params.append(team)
        if status:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC LIMIT ?"
        rows = self.store.query(sql, (*params, limit))
        return [_ticket(r, []) for r in rows]

    def update(
        self,
        number: str,
        *,
        status: str | None = None,
        resolution: str | None = None,
        note: str | None = None,
        messages: Messages | None = None,
    ) -> Ticket:
        ticket = self.get(number)
        if ticket is None:
            raise TicketError(f"no ticket {number}")
        new = ticket.status
        if status is not None:
            try:
                new = Status(status)
            except ValueError as exc:
                choices = ", ".join(s.value for s in Status)
                raise TicketError(f"unknown status {status!r}; expected one of {choices}") from exc
            if new != ticket.status and new not in MOVES[ticket.status]:
                raise TicketError(f"ticket {number} cannot go from {ticket.status} to {new}")
        text = resolution if resolution is not None else ticket.resolution
        if new is Status.RESOLVED and not (text or "").strip():
            raise TicketError("a resolved ticket needs the team's resolution text (--resolution)")
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE tickets SET status = ?, resolution = ?, updated_at = ? WHERE number = ?",
                (str(new), text, now, number),
            )
            conn.execute(
                "INSERT INTO ticket_history(number, at, status, note) VALUES (?, ?, ?, ?)",
                (number, now, str(new), note or (resolution or f"status {new}")),
            )
            if (
                new is Status.RESOLVED
                and ticket.status is not Status.RESOLVED
                and ticket.caller
                and messages is not None
            ):
                self.outbox.send(
                    ticket.caller,
                    messages.resolved.format(number=number, resolution=text),
                    kind="ticket",
                )
        log.info("ticket %s: %s -> %s", number, ticket.status, new)
        updated = self.get(number)
        assert updated is not None
        return updated

    def seed(self, raw: dict[str, Any]) -> Ticket:
        """A ticket exactly as given (test-call fixtures): number, team, status, resolution,
        caller; ``opened_as``: the status it was opened with, when it has changed since (its
        history then holds the opening an hour ago and the change to ``status`` now)."""
        number = str(raw["number"])
        if not (number.isdigit() and len(number) == NUMBER_DIGITS):
            raise TicketError(f"ticket number must be {NUMBER_DIGITS} digits, got {number!r}")
        status = Status(str(raw.get("status", "open")))
        opened = Status(str(raw.get("opened_as", status)))
        now = time.time()
        history = [(now, opened, "seeded")]
        if opened is not status:
            history = [(now - 3600, opened, "seeded"), (now, status, f"status {status}")]
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO tickets(number, team, status, created_at, updated_at, caller, call_id,"
                " locale, details_json, resolution) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    number,
                    str(raw.get("team", "content_review")),
                    str(status),
                    history[0][0],
                    now,
                    raw.get("caller"),
                    str(raw.get("locale", "en-US")),
                    json.dumps(raw.get("details") or {}, ensure_ascii=False),
                    raw.get("resolution"),
                ),
            )
            for at, moved_to, note in history:
                conn.execute(
                    "INSERT INTO ticket_history(number, at, status, note) VALUES (?, ?, ?, ?)",
                    (number, at, str(moved_to), note),
                )
        ticket = self.get(number)
        assert ticket is not None
        return ticket


def _ticket(r: Any, history: list[Change]) -> Ticket:
    return Ticket(
        number=r["number"],
        team=r["team"],
        status=Status(r["status"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        caller=r["caller"],
        call_id=r["call_id"],
        locale=r["locale"],
        details=json.loads(r["details_json"]),
        resolution=r["resolution"],
        history=history,
    )
