"""Caller care through the real session: what a scripted call leaves in the store (the text
message outbox, the call records of a remembered caller)."""

from __future__ import annotations

import re

import pytest

from ivr.qa.runner import QaRunner
from ivr.services.knowledge import KnowledgeBase
from ivr.services.sms import Alphabet, sms_length
from tests.conftest import REPO
from tests.e2e.test_calls import _connect_for

CALLS = REPO / "tests" / "calls"


@pytest.fixture(scope="module")
def runner(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    return QaRunner(settings, db_dir=tmp_path_factory.mktemp("care-db"))


def test_text_me_puts_the_steps_in_the_outbox_in_numbered_parts(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(CALLS / "reset_text_me_keys" / "call.yaml")
    assert report.passed, report.error
    conn = _connect_for(runner, report.call_id)
    rows = conn.execute(
        "SELECT to_number, body FROM sms_outbox WHERE kind = 'steps' ORDER BY id"
    ).fetchall()
    # to the verified account's phone (the caller ID is another number), once
    assert {to for to, _ in rows} == {"13800138000"}
    parts = [body for _, body in rows]
    assert len(parts) == 3
    for i, part in enumerate(parts, 1):
        assert part.startswith(f"({i}/3) ") and len(part) <= 153
    text = " ".join(re.sub(r"^\(\d/3\) ", "", p).replace("\n", " ") for p in parts)
    steps = KnowledgeBase(REPO / "prompts", "en-US").get("reset_password").steps
    for n, step in enumerate(steps, 1):
        assert f"{n}. {step}" in text
    # the turns show the keys, and the number never appears in clear
    said = " ".join(r[0] for r in conn.execute("SELECT text FROM transcript"))
    assert "13800138000" not in said and "ending in 8000" in said
    asks = [
        r[0] for r in conn.execute("SELECT ask FROM turns WHERE call_id = ?", (report.call_id,))
    ]
    assert asks.count("step_done") == 6  # four steps, and twice "text me" on step 2


def test_mandarin_steps_are_split_for_ucs2(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(CALLS / "zh_live_streaming_text_me_keys" / "call.yaml")
    assert report.passed, report.error
    conn = _connect_for(runner, report.call_id)
    parts = [r[0] for r in conn.execute("SELECT body FROM sms_outbox WHERE kind = 'steps'")]
    assert len(parts) >= 2
    for i, part in enumerate(parts, 1):
        assert part.startswith(f"({i}/{len(parts)}) ")
        assert sms_length(part, Alphabet.UCS2) <= 67


def test_a_callback_window_chosen_by_keys_is_kept_for_the_agents(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(CALLS / "callback_window_keys" / "call.yaml")
    assert report.passed, report.error
    conn = _connect_for(runner, report.call_id)
    rows = conn.execute(
        "SELECT b.status, b.call_window, q.reason FROM callbacks b"
        " JOIN agent_queue q ON q.id = b.queue_id WHERE q.call_id = ?",
        (report.call_id,),
    ).fetchall()
    assert rows == [("pending", "afternoon", "caller_request")]
    asks = [
        r[0] for r in conn.execute("SELECT ask FROM turns WHERE call_id = ?", (report.call_id,))
    ]
    assert asks == ["main_menu", "callback_window"]
