"""Callers remembered as patient: the next call from their number starts in patient mode.

A number is kept only as its keyed hash (:func:`ivr.services.privacy.caller_key`), with
an expiry; an expired row counts as forgotten and is removed when the next one is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ivr.services.privacy import caller_key, mask_phone
from ivr.services.store import Store

log = logging.getLogger(__name__)

DAY_SEC = 86400.0


class PatientCallers:
    """``key``: the key of the number hashes (:func:`ivr.services.privacy.secret_key`)."""

    def __init__(
        self,
        store: Store,
        key: bytes,
        *,
        remember_days: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = key
        self.ttl_sec = remember_days * DAY_SEC
        self.clock = clock

    def _hash(self, number: str) -> str:
        return caller_key(number, self.key) or ""

    def remembers(self, number: str | None) -> bool:
        """Whether a call from ``number`` starts patient (an unknown caller never does)."""
        if not number:
            return False
        rows = self.store.query(
            "SELECT 1 FROM patient_callers WHERE caller_hash = ? AND expires_at > ?",
            (self._hash(number), self.clock()),
        )
        return bool(rows)

    def remember(self, number: str | None) -> None:
        """Keep ``number`` as patient from now until the expiry (again from now if kept)."""
        if not number:
            return
        now = self.clock()
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM patient_callers WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO patient_callers(caller_hash, since, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT(caller_hash) DO UPDATE SET expires_at = excluded.expires_at",
                (self._hash(number), now, now + self.ttl_sec),
            )
        log.info("caller %s remembered as patient", mask_phone(number))

    def forget(self, number: str | None) -> None:
        if not number:
            return
        self.store.execute(
            "DELETE FROM patient_callers WHERE caller_hash = ?", (self._hash(number),)
        )
        log.info("caller %s no longer remembered as patient", mask_phone(number))
