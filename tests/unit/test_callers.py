"""Callers remembered: the keyed hash of the number, news of tickets since the last call, and
the task a caller hung up in (real SQLite)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from ivr.services.accounts import Accounts
from ivr.services.callers import PICK_UP_SEC, CallerMemory
from ivr.services.calls import CallRecorder, Outcome
from ivr.services.codes import Codes, SmsOutbox
from ivr.services.store import Store
from ivr.services.tickets import Tickets

CALLER = "13800138000"
TASKS = frozenset({"account_recovery", "live_streaming", "content_review"})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "memory.sqlite3")


def _call(
    store: Store,
    memory: CallerMemory,
    *,
    states: list[str],
    outcome: Outcome,
    intent: str | None = None,
    account: str | None = None,
    ago_s: float = 60.0,
) -> str:
    rec = CallRecorder(
        store, channel="scripted", locale="en-US", caller_id=CALLER, caller_key=memory.key(CALLER)
    )
    for state in states:
        rec.state(state)
    if intent:
        rec.set(intent=intent)
    if account:
        rec.set(account_key=memory.key(account))
    rec.finish(outcome)
    at = time.time() - ago_s
    store.execute(
        "UPDATE calls SET started_at = ?, ended_at = ? WHERE id = ?", (at - 30, at, rec.call_id)
    )
    return rec.call_id


def test_the_number_is_kept_only_as_a_keyed_hash(store: Store, tmp_path: Path) -> None:
    memory = CallerMemory(store, b"k" * 32)
    key = memory.key(CALLER)
    assert key is not None and len(key) == 64 and CALLER not in key
    assert memory.key("+86 138-0013-8000") != key  # another number (the country code)
    assert memory.key("138 0013 8000") == key  # the same digits
    assert CallerMemory(store, b"x" * 32).key(CALLER) != key  # another secret
    assert memory.key(None) is None and memory.key("") is None
    _call(store, memory, states=["welcome", "main_menu"], outcome=Outcome.RESOLVED)
    store.close()
    raw = (tmp_path / "memory.sqlite3").read_bytes()
    assert CALLER.encode() not in raw and b"0013" not in raw
    conn = sqlite3.connect(tmp_path / "memory.sqlite3")
    assert conn.execute("SELECT caller_key, caller_masked FROM calls").fetchone() == (
        key,
        "*******8000",
    )


def _ticket(store: Store, number: str, *, opened_as: str, status: str) -> None:
    Tickets(store, SmsOutbox(store)).seed(
        {
            "number": number,
            "status": status,
            "opened_as": opened_as,
            "caller": CALLER,
            "resolution": "Back in recommendations." if status == "resolved" else None,
        }
    )


def test_news_is_a_status_change_after_opening_and_after_the_last_call(store: Store) -> None:
    memory = CallerMemory(store, b"k" * 32)
    tickets = Tickets(store, SmsOutbox(store))
    _ticket(store, "20263377", opened_as="open", status="resolved")  # changed a moment ago
    _ticket(store, "20260001", opened_as="resolved", status="resolved")  # never changed
    _ticket(store, "20260002", opened_as="open", status="open")  # just opened
    # a first-ever call: only the ticket that changed after it was opened
    (news,) = memory.recall(CALLER, call_id="now", tasks=TASKS).news
    assert (news.number, news.status, news.resolution) == (
        "20263377",
        "resolved",
        "Back in recommendations.",
    )
    assert memory.recall("13900000000", call_id="now", tasks=TASKS).news == ()
    # the change was 10 minutes ago, and the caller has called since: heard, nothing new
    store.execute("UPDATE ticket_history SET at = at - 600")
    _call(store, memory, states=["welcome", "main_menu"], outcome=Outcome.RESOLVED)
    assert memory.recall(CALLER, call_id="now", tasks=TASKS).news == ()
    # a note on the same status is no news; a move to another status is
    tickets.update("20260002", note="looked at it")
    assert memory.recall(CALLER, call_id="now", tasks=TASKS).news == ()
    tickets.update("20260002", status="in_progress")
    (news,) = memory.recall(CALLER, call_id="now", tasks=TASKS).news
    assert (news.number, news.status) == ("20260002", "in_progress")


def test_pick_up_within_30_minutes_of_a_task_left_midway(store: Store) -> None:
    memory = CallerMemory(store, b"k" * 32)
    mid_task = ["welcome", "main_menu", "live_streaming_answer", "offer_walkthrough"]
    _call(store, memory, states=mid_task, outcome=Outcome.ABANDONED, intent="live_streaming")
    pick_up = memory.recall(CALLER, call_id="now", tasks=TASKS).pick_up
    assert pick_up is not None and pick_up.intent == "live_streaming"
    assert pick_up.state == "offer_walkthrough" and pick_up.account_phone is None
    assert memory.recall(CALLER, call_id="now", tasks=frozenset()).pick_up is None
    # only the last call counts: one that hung up at the menu, or long ago, or ended well
    for states, outcome, ago in (
        (["welcome", "main_menu"], Outcome.ABANDONED, 30.0),
        (mid_task, Outcome.ABANDONED, PICK_UP_SEC + 5),
        (mid_task, Outcome.RESOLVED, 10.0),
        (mid_task, Outcome.TRANSFERRED, 5.0),
    ):
        store.execute("DELETE FROM calls")
        _call(store, memory, states=states, outcome=outcome, intent="live_streaming", ago_s=ago)
        assert memory.recall(CALLER, call_id="now", tasks=TASKS).pick_up is None, states


def test_recovery_picks_up_at_the_code_only_while_it_is_valid(store: Store) -> None:
    clock = [time.time()]
    memory = CallerMemory(store, b"k" * 32, clock=lambda: clock[0])
    accounts = Accounts(store)
    accounts.add(CALLER, "Wang Fang")
    codes = Codes(store, accounts, SmsOutbox(store), clock=lambda: clock[0])
    codes.issue(CALLER)
    states = ["welcome", "main_menu", "recovery_start", "confirm_caller_id", "send_code"]
    _call(
        store,
        memory,
        states=[*states, "verification_code"],
        outcome=Outcome.ABANDONED,
        intent="account_recovery",
        account=CALLER,
    )
    pick_up = memory.recall(CALLER, call_id="now", tasks=TASKS).pick_up
    assert pick_up is not None and pick_up.account_phone == CALLER
    row = store.query("SELECT account_key, states FROM calls")[0]
    assert CALLER not in row["account_key"] and json.loads(row["states"])[-1] == "verification_code"
    clock[0] += 5 * 60 + 1  # the code expired: back to the task's first ask
    pick_up = memory.recall(CALLER, call_id="now", tasks=TASKS).pick_up
    assert pick_up is not None and pick_up.account_phone is None
