"""One-time codes sent by text message, and the local SMS outbox.

Codes are 6 digits from ``secrets``, valid 5 minutes, 3 tries, then the
account's recovery is locked for 30 minutes. Only a salted hash is stored; the
text message itself (the outbox, i.e. the gateway's queue) is the one place
the code exists in clear.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ivr.services.accounts import Accounts
from ivr.services.privacy import mask_phone
from ivr.services.store import Store

log = logging.getLogger(__name__)

CODE_DIGITS: Final = 6
CODE_TTL_SEC: Final = 5 * 60
MAX_TRIES: Final = 3
MAX_RESENDS: Final = 2
LOCK_SEC: Final = 30 * 60
MAX_CODES_PER_HOUR: Final = 6


class Verify(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"


class Issue(enum.StrEnum):
    SENT = "sent"
    RESEND_LIMIT = "resend_limit"
    RATE_LIMITED = "rate_limited"
    LOCKED = "locked"


@dataclass(frozen=True)
class SmsMessage:
    id: int
    to_number: str
    body: str
    created_at: float
    kind: str


class SmsOutbox:
    """The text-message gateway for development and tests: messages wait in a table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def send(self, to_number: str, body: str, *, kind: str = "message") -> None:
        self.store.execute(
            "INSERT INTO sms_outbox(to_number, body, created_at, kind) VALUES (?, ?, ?, ?)",
            (to_number, body, time.time(), kind),
        )
        log.info("text message queued to %s (%s)", mask_phone(to_number), kind)

    def messages(self, to_number: str | None = None) -> list[SmsMessage]:
        sql = "SELECT id, to_number, body, created_at, kind FROM sms_outbox"
        rows = (
            self.store.query(sql + " WHERE to_number = ? ORDER BY id", (to_number,))
            if to_number
            else self.store.query(sql + " ORDER BY id")
        )
        return [
            SmsMessage(r["id"], r["to_number"], r["body"], r["created_at"], r["kind"]) for r in rows
        ]


def _hash(code: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


class Codes:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        outbox: SmsOutbox,
        *,
        message: str = "Your verification code is {code}. It is valid for 5 minutes.",
        fixed_code: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.outbox = outbox
        self.message = message
        self.fixed_code = fixed_code
        self.clock = clock

    def _new_code(self) -> str:
        if self.fixed_code is not None:
            return self.fixed_code
        return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"

    def _current(self, phone: str) -> dict[str, object] | None:
        rows = self.store.query(
            "SELECT * FROM otp_codes WHERE phone = ? AND used = 0 ORDER BY id DESC LIMIT 1",
            (phone,),
        )
        return dict(rows[0]) if rows else None

    def issue(self, phone: str, *, resend: bool = False) -> Issue:
        """Send a fresh code (a resend replaces the current code and counts against 2)."""
        now = self.clock()
        account = self.accounts.by_phone(phone)
        if account is not None and account.recovery_locked(now):
            return Issue.LOCKED
        # the limits are read and the code written under one write lock (one transaction), so
        # processes sharing the store never both pass a limit; the code and its text message
        # are committed together
        with self.store.transaction() as conn:
            recent = conn.execute(
                "SELECT COUNT(*) AS n FROM otp_codes WHERE phone = ? AND issued_at > ?",
                (phone, now - 3600),
            ).fetchone()["n"]
            if recent >= MAX_CODES_PER_HOUR:
                return Issue.RATE_LIMITED
            current = self._current(phone)
            resends = 0
            if resend and current is not None:
                resends = int(current["resends"]) + 1  # type: ignore[call-overload]
                if resends > MAX_RESENDS:
                    return Issue.RESEND_LIMIT
            tries = int(current["tries"]) if (resend and current) else 0  # type: ignore[call-overload]
            code = self._new_code()
            salt = secrets.token_hex(8)
            conn.execute("UPDATE otp_codes SET used = 1 WHERE phone = ? AND used = 0", (phone,))
            conn.execute(
                "INSERT INTO otp_codes(phone, code_hash, salt, issued_at, expires_at, tries, resends)"  # noqa: E501
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (phone, _hash(code, salt), salt, now, now + CODE_TTL_SEC, tries, resends),
            )
            self.outbox.send(phone, self.message.format(code=code), kind="verification_code")
        return Issue.SENT

    def verify(self, phone: str, code: str) -> Verify:
        now = self.clock()
        account = self.accounts.by_phone(phone)
        if account is not None and account.recovery_locked(now):
            return Verify.LOCKED
        # read and spent under one write lock: a code is accepted once, whichever process
        # (or call) presents it first; a wrong try, the spent code and the lock-out commit
        # together
        with self.store.transaction():
            current = self._current(phone)
            if current is None:
                return Verify.EXPIRED
            if float(current["expires_at"]) < now:  # type: ignore[arg-type]
                return Verify.EXPIRED
            if hmac.compare_digest(_hash(code, str(current["salt"])), str(current["code_hash"])):
                spent = self.store.execute(
                    "UPDATE otp_codes SET used = 1 WHERE id = ? AND used = 0", (current["id"],)
                ).rowcount
                return Verify.OK if spent == 1 else Verify.EXPIRED
            tries = int(current["tries"]) + 1  # type: ignore[call-overload]
            self.store.execute(
                "UPDATE otp_codes SET tries = ? WHERE id = ?", (tries, current["id"])
            )
            if tries >= MAX_TRIES:
                self.store.execute("UPDATE otp_codes SET used = 1 WHERE id = ?", (current["id"],))
                self.accounts.lock_recovery(phone, now + LOCK_SEC)
                locked = True
            else:
                locked = False
        if locked:
            log.info("recovery locked for %s after %d wrong codes", mask_phone(phone), tries)
            return Verify.LOCKED
        return Verify.WRONG
