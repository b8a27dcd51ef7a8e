"""The desk in a real headless browser (Debian's Chromium driven by Playwright): what agents
and supervisors see, live, over a real `ivr desk` process and the store `ivr serve` writes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.agents.cases import CallbackWindow, CaseDesk
from ivr.agents.directory import Agent, AgentState, Directory
from ivr.channels.scripted import ScriptedChannel, Turn, TurnKind
from ivr.config import Settings
from ivr.qa.runner import QaRunner
from ivr.services.calls import CallRecorder, Outcome
from ivr.services.store import Store
from ivr.session import Runtime
from tests.desk.helpers import PASSWORD, DeskProcess, transferred_call

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 5000  # bound on every wait for something to show (the desk pushes within ~0.1 s)
SHOTS = os.environ.get("IVR_DESK_SCREENSHOTS")  # a folder: keep screenshots for the README


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def open_desk(browser: Any, desk: DeskProcess) -> Iterator[Callable[[str], Any]]:
    contexts: list[Any] = []

    def login(name: str) -> Any:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{desk.url}/")
        assert page.url.endswith("/login")
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("header .who")
        return page

    yield login
    for context in contexts:
        context.close()


def test_a_transferred_call_appears_live_and_is_worked_to_the_end(
    open_desk: Callable[[str], Any], store: Store, settings: Settings, people: dict[str, Agent]
) -> None:
    alice, bob = open_desk("alice"), open_desk("bob")
    for page in (alice, bob):
        page.wait_for_selector("#waiting tr.empty")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    # a scripted caller presses 0 for an agent: the real flow transfers and queues the case
    runtime = Runtime(settings, store=store)
    channel = ScriptedChannel([Turn(TurnKind.DTMF, keys="0")], caller_id="13800138000")
    result = runtime.run_call(channel, locale="en-US")
    assert result.outcome is Outcome.TRANSFERRED
    (case,) = CaseDesk(store).cases()
    for page in (alice, bob):
        row = page.wait_for_selector(f'#waiting tr[data-case="{case.id}"]')
        assert "caller request" in row.inner_text() and "*******8000" in row.inner_text()
        assert page.evaluate("window.__sameDocument") is True
    shot(alice, "queue")
    alice.click(f'#waiting tr[data-case="{case.id}"] a')
    alice.wait_for_selector("#claim").click()
    alice.wait_for_selector("#reveal")
    assert "13800138000" not in alice.content()
    # bob's queue moves the case to "being handled" by alice, without a reload
    bob.wait_for_selector(f'#claimed tr[data-case="{case.id}"] >> text=alice')
    assert bob.query_selector(f'#waiting tr[data-case="{case.id}"]') is None
    assert bob.evaluate("window.__sameDocument") is True
    alice.fill("#note-text", "Walked the caller through the reset.")
    alice.click("#add-note")
    alice.wait_for_selector("#notes >> text=Walked the caller through the reset.")
    shot(alice, "case")
    alice.click("#reveal")
    assert alice.inner_text("#number") == "13800138000"
    alice.select_option("#outcome", "solved")
    alice.click("#resolve")
    alice.wait_for_selector("#queue")
    done = CaseDesk(store).summary(case.id)
    assert done is not None and done.status == "resolved" and done.claimed_by == "alice"
    bob.wait_for_selector(f'#claimed tr[data-case="{case.id}"]', state="detached")


def test_a_script_in_the_transcript_shows_as_text(
    open_desk: Callable[[str], Any], desk: DeskProcess, store: Store
) -> None:
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>x</b>'
    case = transferred_call(store, said=evil)
    page = open_desk("alice")
    page.goto(f"{desk.url}/cases/{case}")
    cell = page.wait_for_selector("#transcript tr.caller td")
    assert cell.inner_text() == evil
    assert page.query_selector("#transcript b, #transcript img, #transcript script") is None
    assert page.evaluate("window.__pwned") is None
    assert page.query_selector("#turns") is not None


def test_the_routed_case_pops_on_the_agents_screen(
    open_desk: Callable[[str], Any], store: Store, people: dict[str, Agent]
) -> None:
    page = open_desk("alice")
    page.click("#state-available")
    page.wait_for_selector("#my-state >> text=available")
    assert Directory(store).get(people["alice"].id).state is AgentState.AVAILABLE  # type: ignore[union-attr]
    case = transferred_call(store)
    CaseDesk(store).assign(case, people["alice"].id)  # what the router does as it REFERs
    page.wait_for_url(f"**/cases/{case}")
    assert "Case" in page.inner_text("h1")


def test_a_change_while_the_case_page_loads_still_shows(
    open_desk: Callable[[str], Any], desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    """The router pops the case as it REFERs; the phone may answer (the case is claimed) after
    the page is made but before its event stream connects. The page still shows it."""
    case = transferred_call(store)
    page = open_desk("alice")
    held: list[Any] = []
    page.route("**/events*", lambda route: held.append(route))  # waits while the claim happens
    page.goto(f"{desk.url}/cases/{case}")
    page.wait_for_selector("#status")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the case page never opened its event stream"
    assert page.query_selector("#holder") is None
    assert CaseDesk(store).claim(case, people["alice"])
    page.wait_for_timeout(1000)  # the desk has told the streams open then (it polls each 0.1 s)
    held[0].continue_()
    # a stream held this long may have been dropped by the browser, which then reconnects
    # from the page's event after its retry delay (3 s before the desk's first message):
    # on a busy machine that, and the fragment's fetch, outlast the 5 s default
    page.wait_for_selector("#holder >> text=alice", timeout=20_000)
    assert page.url.endswith(f"/cases/{case}")


def test_a_burst_of_events_refreshes_the_queue_once(
    open_desk: Callable[[str], Any], desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    """Forty changes that reach the page at once (a stream that resumes after the page
    was made, or a busy moment) fetch the queue a few times, not forty."""
    case = transferred_call(store)
    page = open_desk("alice")
    page.wait_for_selector(f'#waiting tr[data-case="{case}"]')
    held: list[Any] = []
    page.route("**/events*", lambda route: held.append(route))
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/fragments/queue" in r.url else None)
    page.reload()
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the queue page never opened its event stream"
    cases = CaseDesk(store)
    for _ in range(20):  # offered to bob's phone and taken back: not alice's pop
        cases.assign(case, people["bob"].id)
        cases.assign(case, None)
    late = transferred_call(store, caller="13900000001")
    held[0].continue_()
    page.wait_for_selector(f'#waiting tr[data-case="{late}"]')
    page.wait_for_timeout(500)
    assert 1 <= len(fetched) <= 3, fetched


def test_supervisor_board_matches_the_calls_run(
    open_desk: Callable[[str], Any],
    desk: DeskProcess,
    db: Path,
    store: Store,
    settings: Settings,
    people: dict[str, Agent],
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls"
    for name, body in (
        ("agent", "turns:\n  - dtmf: '0'\n"),
        ("gone", "turns:\n  - dtmf: '3'\n  - hangup: true\n"),
    ):
        (calls / name).mkdir(parents=True)
        (calls / name / "call.yaml").write_text(
            f"name: {name}\nlocale: en-US\ncaller_id: '13800138000'\n{body}"
        )
    runner = QaRunner(settings, db_file=db)
    outcomes = [
        runner.run_path(path).outcome
        for path in (
            REPO / "tests/calls/content_review_keys/call.yaml",
            REPO / "tests/calls/live_streaming_keys/call.yaml",
            calls / "agent" / "call.yaml",
            calls / "gone" / "call.yaml",
        )
    ]
    assert outcomes == ["resolved", "resolved", "transferred", "abandoned"]
    live = CallRecorder(store, channel="sip", locale="en-US", caller_id="13800138002")
    live.state("welcome")  # a call in the IVR now
    Directory(store).set_state(people["bob"].id, AgentState.AVAILABLE)
    boss = open_desk("sue")
    assert boss.url.endswith("/supervisor")
    assert boss.inner_text("#calls") == "5"
    assert boss.inner_text("#containment") == "40%"
    assert boss.inner_text("#transferred") == "1"
    assert boss.inner_text("#abandoned") == "1"
    assert boss.inner_text('#reasons td[data-reason="caller_request"]') == "1"
    assert boss.inner_text("#queue-length") == "1"
    assert boss.inner_text("#in-ivr") == "1"
    assert boss.inner_text('#agents td[data-state="available"]') == "1"
    # the funnel: two callers reached the content-review question, one hung up there
    content_type = boss.inner_text('#funnel tr[data-state="content_type"]').split()
    assert content_type == ["content_type", "2", "1"]
    shot(boss, "supervisor")
    # a second transfer shows on the board by itself
    transferred_call(store)
    boss.wait_for_selector("#queue-length >> text=2")
    # an agent gets 403 on the supervisor's page
    agent = open_desk("alice")
    reply = agent.goto(f"{desk.url}/supervisor")
    assert reply is not None and reply.status == 403


def test_forged_posts_and_password_guessing_in_the_browser(
    open_desk: Callable[[str], Any], browser: Any, desk: DeskProcess, store: Store
) -> None:
    case = transferred_call(store)
    page = open_desk("alice")
    status = page.evaluate(
        "id => fetch(`/cases/${id}/claim`, {method: 'POST', body: new URLSearchParams()})"
        ".then(r => r.status)",
        case,
    )
    assert status == 403
    context = browser.new_context()
    try:
        guesser = context.new_page()
        guesser.set_default_timeout(WAIT_MS)
        for _ in range(5):
            guesser.goto(f"{desk.url}/login")
            guesser.fill("#name", "bob")
            guesser.fill("#password", "not-the-password")
            guesser.click("#login")
            assert "Wrong name or password" in guesser.inner_text("#error")
        guesser.goto(f"{desk.url}/login")
        guesser.fill("#name", "bob")
        guesser.fill("#password", PASSWORD)
        guesser.click("#login")
        assert "Too many attempts" in guesser.inner_text("#error")
    finally:
        context.close()


def test_callbacks_are_listed_until_done(
    open_desk: Callable[[str], Any], desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    cases = CaseDesk(store)
    first, second = transferred_call(store), transferred_call(store, caller="13900139000")
    cases.promise_callback(first)
    cases.promise_callback(second, window=CallbackWindow.AFTERNOON)  # the caller's choice
    page = open_desk("bob")
    page.goto(f"{desk.url}/callbacks")
    rows = page.query_selector_all("#callbacks tbody tr")
    assert [r.get_attribute("data-case") for r in rows] == [str(first), str(second)]
    assert rows[0].inner_text().startswith("1")
    windows = [r.query_selector(".window").inner_text() for r in rows]  # type: ignore[union-attr]
    assert windows == ["as soon as possible", "this afternoon"]
    row = page.query_selector(f'#callbacks tr[data-case="{first}"]')
    assert row is not None
    row.query_selector("input[name=note]").fill("no answer, voicemail")  # type: ignore[union-attr]
    row.query_selector("button[value=failed]").click()  # type: ignore[union-attr]
    page.wait_for_selector(f'#callbacks tr[data-case="{first}"] .status >> text=failed')
    items = {c.queue_id: c for c in cases.callbacks()}
    assert items[first].status == "failed" and items[first].note == "no answer, voicemail"
    assert items[second].status == "pending" and items[second].position == 1
    assert len(items) == 2  # nothing dropped
