"""Limits on account recovery counted in the store: per account, per calling number, over a
sliding window, shared by two servers; one calling number trying several accounts opens one
ticket per window; every attempt is audited with masked numbers only; the number key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ivr.config import RecoveryLimits
from ivr.services.codes import SmsOutbox
from ivr.services.privacy import caller_key, secret_key
from ivr.services.recovery_guard import Hold, RecoveryAttempts, RecoveryAudit
from ivr.services.store import Store
from ivr.services.tickets import Tickets

SECRET = b"test-secret"
CALLER, OTHER_CALLER = "13600136000", "13700137000"
ACCOUNTS = ("13800138000", "13912345678", "14155550123", "13500135000")
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _guard(store: Store, clock: Clock, **limits: float) -> RecoveryAttempts:
    return RecoveryAttempts(
        store,
        Tickets(store, SmsOutbox(store)),
        secret=SECRET,
        limits=RecoveryLimits(**limits),  # type: ignore[arg-type]
        clock=clock,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "guard.sqlite3")


def test_per_calling_number_limit_and_window_expiry(store: Store) -> None:
    clock = Clock()
    guard = _guard(store, clock)
    for n in range(5):  # five numbers tried (found or not) from one line
        got = guard.attempt(f"1390000000{n}", found=False, caller=CALLER)
        assert got.hold is None
        clock.now += 60
    assert guard.caller_held(CALLER) is not None
    held = guard.attempt(ACCOUNTS[0], found=True, caller=CALLER)
    assert held.hold is Hold.CALLER and held.count == 5 and held.limit == 5
    assert "5 recovery attempts for this calling number in the last 24 h" in held.why(24 * HOUR)
    # another line may still try the same account: the hold is on the calling number
    assert guard.attempt(ACCOUNTS[0], found=True, caller=OTHER_CALLER).hold is None
    # the refused attempt was not counted; a day after the first attempt they start to expire
    assert guard.caller_count(CALLER) == 5
    clock.now += 24 * HOUR - 5 * 60 + 1
    assert guard.caller_count(CALLER) == 4
    assert guard.caller_held(CALLER) is None
    assert guard.attempt(ACCOUNTS[0], found=True, caller=CALLER).hold is None


def test_per_account_limit_across_calling_numbers(store: Store) -> None:
    clock = Clock()
    guard = _guard(store, clock, attempts_per_account=3)
    for n in range(3):
        assert guard.attempt(ACCOUNTS[0], found=True, caller=f"1370000000{n}").hold is None
    held = guard.attempt(ACCOUNTS[0], found=True, caller="13799999999")
    assert held.hold is Hold.ACCOUNT and held.count == 3
    assert "for this account" in held.why(24 * HOUR)
    # without caller ID only the account's limit applies
    assert guard.attempt(ACCOUNTS[0], found=True, caller=None).hold is Hold.ACCOUNT
    assert guard.attempt(ACCOUNTS[1], found=True, caller=None).hold is None
    clock.now += 24 * HOUR + 1
    assert guard.attempt(ACCOUNTS[0], found=True, caller="13799999999").hold is None


def test_two_servers_share_the_counts(tmp_path: Path) -> None:
    """Two processes' stores on one database file: the limit holds across them."""
    clock = Clock()
    a = _guard(Store(tmp_path / "shared.sqlite3"), clock)
    b = _guard(Store(tmp_path / "shared.sqlite3"), clock)
    for n in range(5):
        assert (a if n % 2 else b).attempt(
            f"1390000000{n}", found=False, caller=CALLER
        ).hold is None
    assert a.attempt(ACCOUNTS[0], found=True, caller=CALLER).hold is Hold.CALLER
    assert b.attempt(ACCOUNTS[0], found=True, caller=CALLER).hold is Hold.CALLER


def test_several_accounts_from_one_number_open_one_ticket_per_window(store: Store) -> None:
    clock = Clock()
    guard = _guard(store, clock, attempts_per_caller=50)
    tickets = Tickets(store, SmsOutbox(store))
    opened: list[str | None] = []
    for account in ACCOUNTS[:2]:
        opened.append(guard.attempt(account, found=True, caller=CALLER, call_id="c1").ticket)
        guard.attempt(account, found=True, caller=CALLER, call_id="c1")  # same account again
    guard.attempt("13900000009", found=False, caller=CALLER)  # no account: not counted here
    assert opened == [None, None] and tickets.list(team="accounts") == []
    third = guard.attempt(ACCOUNTS[2], found=True, caller=CALLER, call_id="c2")
    assert third.ticket is not None
    # later calls in the window, even a fourth account, open no second ticket
    assert guard.attempt(ACCOUNTS[3], found=True, caller=CALLER, call_id="c3").ticket is None
    clock.now += 2 * HOUR
    assert guard.attempt(ACCOUNTS[0], found=True, caller=CALLER, call_id="c4").ticket is None
    (ticket,) = tickets.list(team="accounts")
    assert ticket.number == third.ticket and ticket.call_id == "c2"
    assert ticket.caller is None  # no text message to the line, no number in clear
    assert ticket.details["caller"] == "*******6000"
    assert ticket.details["accounts"] == ["*******8000", "*******5678", "*******0123"]
    assert ticket.details["attempts"] == 6 and ticket.details["calls"] == 2
    text = json.dumps(ticket.as_dict(masked=False))
    assert CALLER not in text and not any(a in text for a in ACCOUNTS)
    assert SmsOutbox(store).messages() == []
    # the next window: a fresh ticket once three accounts are tried again
    clock.now += 25 * HOUR
    got = [guard.attempt(a, found=True, caller=CALLER).ticket for a in ACCOUNTS[:3]]
    assert got[:2] == [None, None] and got[2] is not None and got[2] != third.ticket
    assert len(tickets.list(team="accounts")) == 2


def test_numbers_are_kept_only_as_keyed_hashes_and_masks(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    guard = _guard(store, clock, attempts_per_caller=1)
    guard.attempt(ACCOUNTS[0], found=True, caller=CALLER, call_id="c1", server="a:5080")
    guard.attempt(ACCOUNTS[1], found=True, caller=CALLER, call_id="c1", server="a:5080")
    RecoveryAudit(store).log(
        step="send_code", result="sent", call_id="c1", caller=CALLER, account=ACCOUNTS[0]
    )
    store.close()
    conn = sqlite3.connect(tmp_path / "guard.sqlite3")
    dump = "\n".join(conn.iterdump())
    assert CALLER not in dump and not any(a in dump for a in ACCOUNTS)
    keys = {r[0] for r in conn.execute("SELECT caller_key FROM recovery_attempts")}
    assert keys == {caller_key(CALLER, SECRET)} and caller_key(CALLER, b"other") not in keys
    rows = conn.execute(
        "SELECT call_id, server, caller_masked, account_masked, step, result"
        " FROM recovery_audit ORDER BY id"
    ).fetchall()
    assert rows == [
        ("c1", "a:5080", "*******6000", "*******8000", "number", "found"),
        ("c1", "a:5080", "*******6000", "*******5678", "number", "held:calling_number_limit"),
        ("c1", None, "*******6000", "*******8000", "send_code", "sent"),
    ]


def test_audit_rows_read_back_newest_first(store: Store) -> None:
    clock = Clock()
    audit = RecoveryAudit(store, clock=clock)
    for step in ("start", "send_code", "verify_code"):
        audit.log(step=step, result="ok", call_id="abcdef12", account=ACCOUNTS[0])
        clock.now += 1
    audit.log(step="start", result="ok", call_id="ffff0000", account=ACCOUNTS[1])
    assert [r.step for r in audit.rows(call_id="abcd")] == ["verify_code", "send_code", "start"]
    assert [r.call_id for r in audit.rows(account_last4="5678")] == ["ffff0000"]
    assert len(audit.rows(limit=2)) == 2


def test_the_number_key_is_drawn_once_and_kept(tmp_path: Path) -> None:
    first = secret_key("", tmp_path)
    assert len(first) == 32 and secret_key("", tmp_path) == first  # 256 bits
    assert (tmp_path / "caller.key").stat().st_mode & 0o077 == 0
    assert secret_key("configured", tmp_path) == b"configured"
    assert caller_key("+86 136 0013 6000", first) == caller_key("8613600136000", first)
    assert caller_key(None, first) is None
