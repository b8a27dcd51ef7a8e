"""Callers remembered: what changed for a caller since their last call, and the task they
hung up in the middle of.

A call is found again by a keyed hash of the calling number (``calls.caller_key``,
HMAC-SHA256 with a secret kept outside the database), never by the number itself; so is the
account a recovery call had identified (``calls.account_key``). The rules:

- **News.** A ticket opened for the calling number has news when its status changed after it
  was opened (a move in ``ticket_history`` to another status) and that change came after the
  caller's last call began. A first-ever call hears a ticket only if it changed after it was
  opened; a ticket just opened, or one whose change the caller already heard, says nothing.
- **Pick up.** The caller's last call ended ``abandoned`` less than 30 minutes ago, in the
  middle of a task (its intent is known and its last state belongs to a flow, not to the
  menus). A recovery whose account still has a live one-time code picks up at the code step.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ivr.services.privacy import caller_key
from ivr.services.store import Store

log = logging.getLogger(__name__)

PICK_UP_SEC: Final = 30 * 60
MAX_NEWS: Final = 3
# states of the entry flow: a call that ended in one of these was not in the middle of a task
NOT_IN_TASK: Final = frozenset(
    ("welcome", "caller_news", "pick_up", "main_menu", "anything_else", "goodbye", "transfer")
) | {"end"}


@dataclass(frozen=True)
class TicketNews:
    number: str
    team: str
    status: str
    resolution: str | None
    changed_at: float


@dataclass(frozen=True)
class PickUp:
    """The task a caller hung up in; ``account_phone`` when its recovery code is still live."""

    intent: str
    state: str
    account_phone: str | None = None


@dataclass(frozen=True)
class Recall:
    news: tuple[TicketNews, ...] = ()
    pick_up: PickUp | None = None


class CallerMemory:
    def __init__(
        self, store: Store, secret: bytes, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.secret = secret
        self.clock = clock

    def key(self, number: str | None) -> str | None:
        return caller_key(number, self.secret)

    def recall(self, caller_id: str | None, *, call_id: str, tasks: frozenset[str]) -> Recall:
        """What to tell this caller before the menu (``tasks``: the intents that can resume)."""
        key = self.key(caller_id)
        if key is None or caller_id is None:
            return Recall()
        rows = self.store.query(
            "SELECT started_at, ended_at, outcome, intent, states, account_key FROM calls"
            " WHERE caller_key = ? AND id <> ? ORDER BY started_at DESC LIMIT 1",
            (key, call_id),
        )
        last = rows[0] if rows else None
        since = float(last["started_at"]) if last is not None else None
        news = self.news(caller_id, since)
        pick_up = self._pick_up(last, tasks) if last is not None else None
        return Recall(news=news, pick_up=pick_up)

    def news(self, caller_id: str, since: float | None) -> tuple[TicketNews, ...]:
        """The caller's tickets whose status changed after they were opened and after
        ``since`` (the start of the caller's last call), most recent change first."""
        found: list[TicketNews] = []
        for t in self.store.query(
            "SELECT number, team, status, resolution FROM tickets WHERE caller = ?", (caller_id,)
        ):
            history = self.store.query(
                "SELECT at, status FROM ticket_history WHERE number = ? ORDER BY id",
                (t["number"],),
            )
            changed_at = None
            for before, after in itertools.pairwise(history):
                if after["status"] != before["status"]:
                    changed_at = float(after["at"])
            if changed_at is None or (since is not None and changed_at <= since):
                continue
            found.append(
                TicketNews(t["number"], t["team"], t["status"], t["resolution"], changed_at)
            )
        found.sort(key=lambda n: n.changed_at, reverse=True)
        return tuple(found[:MAX_NEWS])

    def _pick_up(self, row: Any, tasks: frozenset[str]) -> PickUp | None:
        outcome, ended, intent = row["outcome"], row["ended_at"], row["intent"]
        if outcome != "abandoned" or ended is None or intent not in tasks:
            return None
        if float(ended) < self.clock() - PICK_UP_SEC:
            return None
        states = json.loads(row["states"] or "[]")
        if not states or states[-1] in NOT_IN_TASK:
            return None
        account_key = row["account_key"]
        phone = self._live_code_phone(account_key) if account_key else None
        return PickUp(intent=str(intent), state=str(states[-1]), account_phone=phone)

    def _live_code_phone(self, account_key: str) -> str | None:
        """The account's number when a one-time code sent to it is still valid."""
        rows = self.store.query(
            "SELECT DISTINCT phone FROM otp_codes WHERE used = 0 AND expires_at > ?",
            (self.clock(),),
        )
        for r in rows:
            if self.key(r["phone"]) == account_key:
                return str(r["phone"])
        return None
