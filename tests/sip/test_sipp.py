"""`ivr serve` against SIPp: whole calls by RFC 4733 keys, hang-ups, CANCEL, re-INVITE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sip.peers import (
    Ivr,
    RawSip,
    Scenario,
    end_process,
    free_port,
    header,
    raw_sdp,
    request,
    run_sipp,
    start_ivr,
    start_sipp,
    status_of,
)

FIXTURES = """fixtures:
  accounts: [{phone: "13800138000", name: "Wang Fang"}]
  verification_code: "482913"
"""
# main menu 1, caller ID yes, code, code read back yes, 4 steps done, logged in yes, nothing else
RECOVERY_KEYS = "11" + "482913" + "1" + "1111" + "1" + "2"


@pytest.fixture
def ivr(ivr_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    server = start_ivr(ivr_home, tmp_path, "--fixtures", str(fixtures))
    yield server
    server.stop()


def turns(ivr: Ivr, call_id: str) -> list[tuple[str, str, str | None]]:
    import sqlite3

    conn = sqlite3.connect(ivr.db)
    try:
        return list(
            conn.execute(
                "SELECT ask, mode, value FROM turns WHERE call_id = ? ORDER BY seq", (call_id,)
            )
        )
    finally:
        conn.close()


def test_account_recovery_by_keys(ivr: Ivr, tmp_path: Path) -> None:
    scenario = Scenario().invite().keys(RECOVERY_KEYS).wait_bye()
    result = run_sipp(scenario.xml(), ivr.port, tmp_path)
    assert result.returncode == 0, result.stderr
    (call,) = ivr.wait_records(1)
    assert call["outcome"] == "resolved" and call["channel"] == "sip"
    assert call["caller_masked"] == "*******8000"
    states = json.loads(call["states"])
    assert states[-1] == "goodbye" and "reset_password" in states
    modes = {mode for _, mode, _ in turns(ivr, call["id"])}
    assert modes == {"dtmf"}
    # the code never reaches the record in clear
    assert all(value != "482913" for _, _, value in turns(ivr, call["id"]))


def test_the_server_says_what_the_prompt_cache_lacks(ivr: Ivr) -> None:
    """The suite never builds all of en-US's prompts: each one missing is made while a caller
    waits, and the server says so when it starts."""
    ivr.wait_log("WARNING ivr.serve: the prompt cache lacks", timeout=30)
    ivr.wait_log("segments for en-US at 8000 Hz: callers wait", timeout=30)
    ivr.wait_log("segments for en-US at 16000 Hz: callers wait", timeout=30)


def test_caller_hangs_up_midway(ivr: Ivr, tmp_path: Path) -> None:
    scenario = Scenario().invite().keys("11").pause(6000).bye()
    result = run_sipp(scenario.xml(), ivr.port, tmp_path)
    assert result.returncode == 0, result.stderr
    (call,) = ivr.wait_records(1)
    assert call["outcome"] == "abandoned" and call["ended_at"] is not None
    asks = [ask for ask, _, _ in turns(ivr, call["id"])]
    assert asks[:2] == ["main_menu", "confirm_caller_id"]
    assert json.loads(call["states"])[:4] == [
        "welcome",
        "main_menu",
        "recovery_start",
        "confirm_caller_id",
    ]


def test_reinvite_keeps_the_call(ivr: Ivr, tmp_path: Path) -> None:
    scenario = Scenario().invite().keys("11").pause(2000).reinvite().keys(RECOVERY_KEYS[2:])
    result = run_sipp(scenario.wait_bye().xml(), ivr.port, tmp_path)
    assert result.returncode == 0, result.stderr
    (call,) = ivr.wait_records(1)
    assert call["outcome"] == "resolved"


def test_sipp_cancels_before_the_answer(ivr_home: Path, tmp_path: Path) -> None:
    server = start_ivr(ivr_home, tmp_path, "--ring", "3")
    scenario = Scenario().invite_then_cancel()
    try:
        result = run_sipp(scenario.xml(), server.port, tmp_path)
        assert result.returncode == 0, result.stderr
        (call,) = server.wait_records(1, timeout=20)
    finally:
        server.stop()
    assert call["outcome"] == "abandoned"


def test_calls_over_the_limit_are_refused_busy(ivr_home: Path, tmp_path: Path) -> None:
    server = start_ivr(ivr_home, tmp_path, "--max-calls", "1")
    try:
        holder = start_sipp(Scenario().invite().pause(8000).bye().xml(), server.port, tmp_path)
        try:
            server.wait_records(1, timeout=15, finished=False)
            busy = Scenario().invite_expecting(503)  # with Retry-After: try later or elsewhere
            result = run_sipp(busy.xml(), server.port, tmp_path, timeout=20)
            assert result.returncode == 0, result.stderr
            client = RawSip()
            try:
                invite = request(
                    "INVITE",
                    server.port,
                    client,
                    call_id="busy-1",
                    branch="z9hG4bKbusy1",
                    body=raw_sdp(free_port()),
                )
                client.send(invite, server.port)
                answers = [m for m in client.recv_all(3.0) if status_of(m) == 503]
            finally:
                client.close()
            assert answers and header(answers[0], "Retry-After") == ["10"]
        finally:
            end_process(holder)
        rows = server.wait_records(1)
    finally:
        server.stop()
    assert len(rows) == 1  # the refused call never started a call


def test_account_recovery_over_tcp(ivr: Ivr, tmp_path: Path) -> None:
    scenario = Scenario().invite().keys(RECOVERY_KEYS).wait_bye()
    result = run_sipp(scenario.xml(), ivr.port, tmp_path, transport="t1")
    assert result.returncode == 0, result.stderr
    (call,) = ivr.wait_records(1)
    assert call["outcome"] == "resolved"
