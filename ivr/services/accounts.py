"""Accounts directory: which phone number is bound to which account."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Final

from ivr.services.store import Store

DEMO_ACCOUNTS: Final = (
    ("13800138000", "Wang Fang"),
    ("13912345678", "Li Wei"),
    ("14155550123", "Maria Garcia"),
)


def normalize_phone(number: str) -> str:
    return re.sub(r"\D", "", number)


@dataclass(frozen=True)
class Account:
    phone: str
    name: str
    recovery_locked_until: float

    def recovery_locked(self, now: float | None = None) -> bool:
        return self.recovery_locked_until > (now if now is not None else time.time())


class Accounts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, phone: str, name: str) -> None:
        self.store.execute(
            "INSERT INTO accounts(phone, name) VALUES (?, ?) ON CONFLICT(phone)"
            " DO UPDATE SET name = excluded.name, recovery_locked_until = 0",
            (normalize_phone(phone), name),
        )

    def seed_demo(self) -> None:
        with self.store.transaction() as conn:
            for phone, name in DEMO_ACCOUNTS:
                conn.execute(
                    "INSERT INTO accounts(phone, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (phone, name),
                )

    def by_phone(self, phone: str | None) -> Account | None:
        if not phone:
            return None
        rows = self.store.query(
            "SELECT phone, name, recovery_locked_until FROM accounts WHERE phone = ?",
            (normalize_phone(phone),),
        )
        if not rows:
            return None
        r = rows[0]
        return Account(r["phone"], r["name"], r["recovery_locked_until"])

    def lock_recovery(self, phone: str, until: float) -> None:
        self.store.execute(
            "UPDATE accounts SET recovery_locked_until = ? WHERE phone = ?",
            (until, normalize_phone(phone)),
        )
