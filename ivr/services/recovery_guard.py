"""Account recovery that fraud cannot farm: attempts counted in the store, an audit log.

An *attempt* is one number put forward for recovery: the caller-ID account the caller
confirmed, or a number keyed or spoken and confirmed at the read-back (bound to an account
or not). New codes and resends within an attempt do not count: codes have their own limits
(``ivr.services.codes``). Attempts are rows in the store, counted over a sliding window per
account and per calling number, so every call on every server sharing the store sees the
same counts. A number over either limit is not tried: the caller is held (sent to an
agent, reason ``security_hold``). A calling number that tries several distinct accounts
within the window opens one ticket for the ``accounts`` team per window.

Numbers are kept as keyed hashes (``caller_key``) in the attempts and alerts; the audit log
and the ticket hold masked numbers only. A call without caller ID is counted per account
only.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ivr.config import RecoveryLimits
from ivr.services.privacy import caller_key, mask_phone
from ivr.services.store import Store
from ivr.services.tickets import Tickets

log = logging.getLogger(__name__)

TEAM: Final = "accounts"
HOLD_REASON: Final = "security_hold"


class Hold(enum.StrEnum):
    """Why an attempt was refused."""

    CALLER = "calling_number_limit"
    ACCOUNT = "account_limit"


@dataclass(frozen=True)
class Attempt:
    """What became of one attempt: held (not counted) or counted, and any ticket it opened."""

    hold: Hold | None
    count: int  # attempts within the window (of the caller, or of the account when held so)
    limit: int
    ticket: str | None = None

    def why(self, window_s: float) -> str:
        """For the agent's case: why the caller is held."""
        who = "this calling number" if self.hold is Hold.CALLER else "this account"
        return (
            f"{self.count} recovery attempts for {who} in the last {window_s / 3600:g} h"
            f" (limit {self.limit})"
        )


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: float
    call_id: str | None
    server: str | None
    caller: str | None  # masked
    account: str | None  # masked
    step: str
    result: str
    detail: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "call_id": self.call_id,
            "server": self.server,
            "caller": self.caller,
            "account": self.account,
            "step": self.step,
            "result": self.result,
            "detail": self.detail,
        }


_AUDIT_INSERT: Final = (
    "INSERT INTO recovery_audit(at, call_id, server, caller_masked, account_masked, step,"
    " result, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class RecoveryAudit:
    """Every recovery step: who (call, server, masked calling number), when, which account
    (masked), the step and its result."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def log(
        self,
        *,
        step: str,
        result: str,
        call_id: str | None = None,
        server: str | None = None,
        caller: str | None = None,
        account: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.store.execute(
            _AUDIT_INSERT,
            (
                self.clock(),
                call_id,
                server,
                mask_phone(caller),
                mask_phone(account),
                step,
                result,
                detail,
            ),
        )

    def rows(
        self,
        *,
        call_id: str | None = None,
        account_last4: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Newest first; ``call_id`` may be a prefix (as `ivr calls show` takes)."""
        where: list[str] = []
        params: list[Any] = []
        if call_id:
            where.append("call_id LIKE ?")
            params.append(call_id + "%")
        if account_last4:
            where.append("account_masked LIKE ?")
            params.append("%" + account_last4)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        sql = (
            "SELECT id, at, call_id, server, caller_masked, account_masked, step, result, detail"
            " FROM recovery_audit"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY at DESC, id DESC LIMIT ?"
        )
        return [
            AuditRow(
                r["id"],
                r["at"],
                r["call_id"],
                r["server"],
                r["caller_masked"],
                r["account_masked"],
                r["step"],
                r["result"],
                r["detail"],
            )
            for r in self.store.query(sql, (*params, limit))
        ]


class RecoveryAttempts:
    """The limits on recovery attempts, shared by every server of one store."""

    def __init__(
        self,
        store: Store,
        tickets: Tickets,
        *,
        secret: bytes,
        limits: RecoveryLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.tickets = tickets
        self.secret = secret
        self.limits = limits
        self.clock = clock

    def key(self, number: str | None) -> str | None:
        return caller_key(number, self.secret)

    def _count(self, conn: Any, column: str, key: str, since: float) -> int:
        row = conn.execute(
            f"SELECT COUNT(*) AS n FROM recovery_attempts WHERE {column} = ? AND at > ?",
            (key, since),
        ).fetchone()
        return int(row["n"])

    def caller_count(self, caller: str | None) -> int:
        key = self.key(caller)
        if key is None:
            return 0
        since = self.clock() - self.limits.window_s
        return self._count(self.store, "caller_key", key, since)

    def account_count(self, number: str) -> int:
        key = self.key(number)
        assert key is not None
        return self._count(self.store, "account_key", key, self.clock() - self.limits.window_s)

    def caller_held(self, caller: str | None) -> Attempt | None:
        """The hold on a calling number already at its limit (before it tries any number)."""
        count = self.caller_count(caller)
        if caller and count >= self.limits.attempts_per_caller:
            return Attempt(Hold.CALLER, count, self.limits.attempts_per_caller)
        return None

    def attempt(
        self,
        number: str,
        *,
        found: bool,
        caller: str | None,
        call_id: str | None = None,
        server: str | None = None,
        locale: str = "en-US",
        how: str = "number",
    ) -> Attempt:
        """Count one attempt on ``number`` from ``caller``, unless a limit holds it.

        The limits are read and the attempt, its audit row and any alert written under one
        write lock (one transaction), so two servers never both pass a limit."""
        now = self.clock()
        since = now - self.limits.window_s
        account_key = self.key(number)
        assert account_key is not None, "an attempt names a number"
        from_key = self.key(caller)
        alert = False
        with self.store.transaction() as conn:
            by_caller = self._count(conn, "caller_key", from_key, since) if from_key else 0
            by_account = self._count(conn, "account_key", account_key, since)
            if from_key and by_caller >= self.limits.attempts_per_caller:
                held = Attempt(Hold.CALLER, by_caller, self.limits.attempts_per_caller)
            elif by_account >= self.limits.attempts_per_account:
                held = Attempt(Hold.ACCOUNT, by_account, self.limits.attempts_per_account)
            else:
                held = None
            audit = (now, call_id, server, mask_phone(caller), mask_phone(number), how)
            if held is not None:
                conn.execute(
                    _AUDIT_INSERT, (*audit, f"held:{held.hold}", held.why(self.limits.window_s))
                )
                return held
            conn.execute(
                "INSERT INTO recovery_attempts(at, caller_key, account_key, account_masked,"
                " found, call_id, server) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, from_key, account_key, mask_phone(number), int(found), call_id, server),
            )
            conn.execute(_AUDIT_INSERT, (*audit, "found" if found else "not_found", None))
            if from_key:
                alert = self._claim_alert(conn, from_key, since, now)
        ticket = self._open_ticket(caller, from_key, since, call_id, locale) if alert else None
        if ticket is not None:
            self.store.execute(
                _AUDIT_INSERT,
                (self.clock(), call_id, server, mask_phone(caller), None, "alert", TEAM, ticket),
            )
        if from_key:
            return Attempt(None, by_caller + 1, self.limits.attempts_per_caller, ticket)
        return Attempt(None, by_account + 1, self.limits.attempts_per_account, ticket)

    def _claim_alert(self, conn: Any, from_key: str, since: float, now: float) -> bool:
        """Whether this attempt is the one that opens the window's alert (claimed here)."""
        distinct = conn.execute(
            "SELECT COUNT(DISTINCT account_key) AS n FROM recovery_attempts"
            " WHERE caller_key = ? AND found = 1 AND at > ?",
            (from_key, since),
        ).fetchone()["n"]
        if int(distinct) < self.limits.accounts_per_caller:
            return False
        open_alert = conn.execute(
            "SELECT COUNT(*) AS n FROM recovery_alerts WHERE caller_key = ? AND at > ?",
            (from_key, since),
        ).fetchone()["n"]
        if int(open_alert):
            return False
        conn.execute(
            "INSERT INTO recovery_alerts(at, caller_key, ticket_number) VALUES (?, ?, NULL)",
            (now, from_key),
        )
        return True

    def _open_ticket(
        self,
        caller: str | None,
        from_key: str | None,
        since: float,
        call_id: str | None,
        locale: str,
    ) -> str:
        """The ticket for the accounts team: masked numbers only, no text to the caller."""
        rows = self.store.query(
            "SELECT account_key, MAX(account_masked) AS masked FROM recovery_attempts"
            " WHERE caller_key = ? AND found = 1 AND at > ? GROUP BY account_key"
            " ORDER BY MIN(id)",
            (from_key, since),
        )
        attempts = self.store.query(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT call_id) AS calls FROM recovery_attempts"
            " WHERE caller_key = ? AND at > ?",
            (from_key, since),
        )[0]
        details = {
            "reason": "several_accounts_from_one_number",
            "caller": mask_phone(caller),
            "accounts": [r["masked"] for r in rows],
            "attempts": int(attempts["n"]),
            "calls": int(attempts["calls"]),
            "window_hours": round(self.limits.window_s / 3600, 2),
        }
        ticket = self.tickets.create(TEAM, details, caller=None, locale=locale, call_id=call_id)
        self.store.execute(
            "UPDATE recovery_alerts SET ticket_number = ? WHERE caller_key = ?"
            " AND ticket_number IS NULL",
            (ticket.number, from_key),
        )
        log.warning(
            "[%s] %s tried %d accounts within %g h: ticket %s for %s",
            call_id,
            mask_phone(caller),
            len(rows),
            self.limits.window_s / 3600,
            ticket.number,
            TEAM,
        )
        return ticket.number

    def seed(
        self,
        *,
        number: str,
        caller: str | None,
        found: bool = True,
        count: int = 1,
        ago_s: float = 3600.0,
    ) -> None:
        """Earlier attempts (test-call fixtures, demos)."""
        at = self.clock() - ago_s
        with self.store.transaction() as conn:
            for _ in range(count):
                conn.execute(
                    "INSERT INTO recovery_attempts(at, caller_key, account_key, account_masked,"
                    " found, call_id, server) VALUES (?, ?, ?, ?, ?, NULL, 'fixture')",
                    (at, self.key(caller), self.key(number), mask_phone(number), int(found)),
                )


@dataclass
class RecoveryGuard:
    """One call's view of the limits and the audit log (call id, server, calling number)."""

    attempts: RecoveryAttempts
    audit: RecoveryAudit
    call_id: str
    server: str | None
    caller: str | None
    locale: str = "en-US"

    @property
    def window_s(self) -> float:
        return self.attempts.limits.window_s

    def caller_held(self) -> Attempt | None:
        return self.attempts.caller_held(self.caller)

    def attempt(self, number: str, *, found: bool, how: str) -> Attempt:
        return self.attempts.attempt(
            number,
            found=found,
            caller=self.caller,
            call_id=self.call_id,
            server=self.server,
            locale=self.locale,
            how=how,
        )

    def step(
        self, step: str, result: str, *, account: str | None = None, detail: str | None = None
    ) -> None:
        self.audit.log(
            step=step,
            result=result,
            call_id=self.call_id,
            server=self.server,
            caller=self.caller,
            account=account,
            detail=detail,
        )
