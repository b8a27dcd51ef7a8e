"""Accounts, routing and the numbers, on a real SQLite store (no web server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.agents.cases import CallbackWindow, CaseDesk, CaseOutcome
from ivr.agents.directory import AgentError, AgentState, Directory, Role
from ivr.agents.queue import AgentQueue
from ivr.agents.report import calls_csv, day_report
from ivr.agents.routing import AgentRouter, with_case_header
from ivr.desk.auth import LoginThrottle, Sessions
from ivr.services.calls import CallRecorder, Outcome
from ivr.services.store import Store
from tests.desk.helpers import PASSWORD, transferred_call


def test_passwords_are_hashed_with_argon2(store: Store) -> None:
    directory = Directory(store)
    directory.add("alice", role=Role.AGENT, password=PASSWORD)
    (row,) = store.query("SELECT password_hash FROM agents")
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]
    assert directory.check_password("alice", PASSWORD) is not None
    assert directory.check_password("alice", PASSWORD + "x") is None
    assert directory.check_password("nobody", PASSWORD) is None
    directory.disable("alice")
    assert directory.check_password("alice", PASSWORD) is None
    with pytest.raises(AgentError, match="at least 8"):
        directory.add("bob", role=Role.AGENT, password="short")
    with pytest.raises(AgentError, match="exists already"):
        directory.add("alice", role=Role.AGENT, password=PASSWORD)
    with pytest.raises(AgentError, match="SIP address"):
        directory.add("carol", role=Role.AGENT, password=PASSWORD, sip_uri="carol@pbx")


def test_tokens_are_stored_hashed_and_revocable(store: Store) -> None:
    directory = Directory(store)
    directory.add("alice", role=Role.AGENT, password=PASSWORD)
    token = directory.new_token("alice")
    (row,) = store.query("SELECT token_hash FROM agent_tokens")
    assert token not in row["token_hash"]
    assert directory.by_token(token).name == "alice"  # type: ignore[union-attr]
    assert directory.revoke_tokens("alice") == 1
    assert directory.by_token(token) is None


def test_throttle_counts_per_account_and_per_address() -> None:
    throttle = LoginThrottle(per_account=2, per_address=3, window_s=60)
    assert throttle.begin("alice", "10.0.0.1") == 0  # fails (never forgiven)
    assert throttle.begin("ALICE", "10.0.0.2") == 0
    assert throttle.begin("alice", "10.0.0.3") > 0  # the account, from any address
    assert throttle.begin("bob", "10.0.0.3") == 0
    throttle.succeeded("bob", "10.0.0.3")  # a success does not count
    assert throttle.begin("bob", "10.0.0.1") == 0
    assert throttle.begin("dave", "10.0.0.1") == 0
    assert throttle.begin("carol", "10.0.0.1") > 0  # the address, for any account


def test_parallel_guesses_cannot_pass_the_limit() -> None:
    """Attempts whose passwords are still being checked already count."""
    throttle = LoginThrottle(per_account=5, per_address=100, window_s=60)
    started = [throttle.begin("alice", f"10.0.0.{n}") for n in range(20)]
    assert sum(1 for wait in started if wait == 0) == 5


def _agent(store: Store, name: str, *, state: AgentState, langs: tuple[str, ...] = (),
           logged_in: bool = True) -> int:  # fmt: skip
    directory = Directory(store)
    agent = directory.add(
        name, role=Role.AGENT, password=PASSWORD, sip_uri=f"sip:{name}@127.0.0.1:5999",
        languages=langs,
    )  # fmt: skip
    if logged_in:
        Sessions(store, directory).open(agent)
    directory.set_state(agent.id, state)
    return agent.id


def test_routing_takes_the_free_agent_idle_longest_who_speaks_the_language(store: Store) -> None:
    _agent(store, "zoe", state=AgentState.AVAILABLE, langs=("zh-CN",))
    idle_long = _agent(store, "amy", state=AgentState.AVAILABLE, langs=("en-US",))
    _agent(store, "away", state=AgentState.AWAY)
    _agent(store, "ghost", state=AgentState.AVAILABLE, logged_in=False)
    _agent(store, "ben", state=AgentState.AVAILABLE)
    case = transferred_call(store)
    queue = _queue_in_this_thread(store, case)
    targets: list[str] = []
    router = AgentRouter(store, queue)
    assert router.connect(lambda uri, _s: targets.append(uri) or 200) is True
    assert targets == ["sip:amy@127.0.0.1:5999"]
    amy = Directory(store).get(idle_long)
    assert amy is not None and amy.state is AgentState.ON_CALL
    summary = CaseDesk(store).summary(case)
    assert summary is not None and summary.claimed_by == "amy" and summary.assigned_to == "amy"


def test_an_agent_who_does_not_answer_is_skipped(store: Store) -> None:
    first = _agent(store, "amy", state=AgentState.AVAILABLE)
    _agent(store, "ben", state=AgentState.AVAILABLE)
    case = transferred_call(store)
    queue = _queue_in_this_thread(store, case)
    targets: list[tuple[str, float]] = []

    def transfer(uri: str, seconds: float) -> int:
        targets.append((uri, seconds))
        return 480 if "amy" in uri else 200

    assert AgentRouter(store, queue, ring_s=12.0).connect(transfer) is True
    assert targets == [("sip:amy@127.0.0.1:5999", 12.0), ("sip:ben@127.0.0.1:5999", 12.0)]
    assert Directory(store).get(first).state is AgentState.AWAY  # type: ignore[union-attr]
    assert CaseDesk(store).summary(case).claimed_by == "ben"  # type: ignore[union-attr]


def test_fallbacks_pbx_address_then_callback(store: Store) -> None:
    case = transferred_call(store)
    queue = _queue_in_this_thread(store, case)
    targets: list[tuple[str, float]] = []
    router = AgentRouter(
        store, queue, fallback_uri="sip:agents@pbx.example:5060", fallback_wait_s=6.0
    )
    assert router.connect(lambda uri, s: targets.append((uri, s)) or 486) is False
    assert targets == [(f"sip:agents@pbx.example:5060?X-Ivr-Case={case}", 6.0)]  # --agent-wait
    assert [c.queue_id for c in CaseDesk(store).callbacks()] == [case]
    # no agents, no PBX: the case just waits (nobody was promised a call back)
    other = transferred_call(store)
    assert (
        AgentRouter(store, _queue_in_this_thread(store, other)).connect(lambda _u, _s: 200) is None
    )
    assert [c.queue_id for c in CaseDesk(store).callbacks()] == [case]
    # agents exist but none is free: the caller is promised a callback
    _agent(store, "amy", state=AgentState.ON_CALL)
    third = transferred_call(store)
    assert (
        AgentRouter(store, _queue_in_this_thread(store, third)).connect(lambda _u, _s: 200) is False
    )
    assert [c.queue_id for c in CaseDesk(store).callbacks()] == [case, third]
    assert with_case_header("sip:a@b?X-Foo=1", 3) == "sip:a@b?X-Foo=1&X-Ivr-Case=3"


def test_a_callback_keeps_the_window_the_caller_chose(store: Store) -> None:
    desk = CaseDesk(store)
    first, second = transferred_call(store), transferred_call(store)
    desk.promise_callback(first)  # the router promised it before the caller chose
    desk.promise_callback(first, window=CallbackWindow.TOMORROW_MORNING)
    desk.promise_callback(first)  # a later promise without a choice keeps it
    desk.promise_callback(second)
    windows = {c.queue_id: (c.window, c.window_label) for c in desk.callbacks()}
    assert windows == {
        first: (CallbackWindow.TOMORROW_MORNING, "tomorrow morning"),
        second: (None, "as soon as possible"),
    }
    assert [c.queue_id for c in desk.callbacks()] == [first, second]  # the place is kept


def test_a_case_offered_to_one_agent_cannot_be_claimed_by_another(store: Store) -> None:
    amy = Directory(store).get(_agent(store, "amy", state=AgentState.ON_CALL))
    ben = Directory(store).get(_agent(store, "ben", state=AgentState.AVAILABLE))
    assert amy is not None and ben is not None
    case = transferred_call(store)
    desk = CaseDesk(store)
    desk.assign(case, amy.id)  # amy's phone is ringing
    assert not desk.claim(case, ben)
    assert desk.claim(case, amy)
    assert not desk.claim(case, amy)  # and only once


def test_resolving_puts_the_agent_in_wrap_up(store: Store) -> None:
    agent_id = _agent(store, "amy", state=AgentState.AVAILABLE)
    case = transferred_call(store)
    AgentRouter(store, _queue_in_this_thread(store, case)).connect(lambda _u, _s: 200)
    amy = Directory(store).get(agent_id)
    assert amy is not None
    assert CaseDesk(store).resolve(case, amy, CaseOutcome.SOLVED)
    assert Directory(store).get(agent_id).state is AgentState.WRAP_UP  # type: ignore[union-attr]


def test_day_report_and_csv(store: Store) -> None:
    for states, outcome in (
        (["welcome", "main_menu", "recovery_confirm_phone"], Outcome.RESOLVED),
        (["welcome", "main_menu"], Outcome.ABANDONED),
        (["welcome"], Outcome.ABANDONED),
    ):
        rec = CallRecorder(store, channel="sip", locale="en-US", caller_id="=13800138000")
        for s in states:
            rec.state(s)
        rec.finish(outcome)
    transferred_call(store, reason="no_match")
    report = day_report(store)
    assert (report.calls, report.resolved, report.abandoned, report.transferred) == (4, 1, 2, 1)
    assert report.containment == 0.25
    assert report.transfers_by_reason == {"no_match": 1}
    funnel = {f["state"]: (f["reached"], f["left_here"]) for f in report.funnel}
    assert funnel["welcome"] == (4, 1) and funnel["main_menu"] == (3, 1)
    csv = calls_csv(store)
    assert "13800138000" not in csv and len(csv.strip().splitlines()) == 5


def _queue_in_this_thread(store: Store, case_id: int) -> AgentQueue:
    """A queue whose current case (for this thread) is ``case_id``, as after the flow's
    enqueue on the call's own thread."""
    from ivr.agents.queue import QueuedCase

    queue = AgentQueue(store)
    (row,) = store.query("SELECT call_id FROM agent_queue WHERE id = ?", (case_id,))
    queue._local.case = QueuedCase(case_id, row["call_id"])
    return queue


def test_store_tables_exist_in_a_fresh_database(tmp_path: Path) -> None:
    s = Store(tmp_path / "fresh.sqlite3")
    names = {r["name"] for r in s.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"agents", "agent_tokens", "desk_sessions", "case_work", "callbacks"} <= names
    s.close()
