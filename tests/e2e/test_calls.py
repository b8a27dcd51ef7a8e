"""Whole calls through the real session: scripted caller speech (espeak-ng), the default
recognition routes (PocketSphinx with Whisper tiny.en in English, Whisper base in Mandarin),
pyttsx3 prompts, SQLite records."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.qa.runner import QaRunner
from ivr.qa.testcall import find_calls
from tests.conftest import REPO

CALLS = find_calls([REPO / "tests" / "calls"])


@pytest.fixture(scope="module")
def runner(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    return QaRunner(settings, db_dir=tmp_path_factory.mktemp("qa-db"))


def _connect_for(runner, call_id: str) -> sqlite3.Connection:  # type: ignore[no-untyped-def]
    for db in runner.db_dir.glob("*.sqlite3"):
        conn = sqlite3.connect(db)
        if conn.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone():
            return conn
        conn.close()
    raise AssertionError(f"no database holds call {call_id}")


@pytest.mark.parametrize("path", CALLS, ids=[p.parent.name for p in CALLS])
def test_call(runner, path: Path) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(path)
    assert report.passed, report.error


def test_a_correction_said_over_the_phone_after_a_quiet_line_is_heard_whole(  # type: ignore[no-untyped-def]
    settings, tmp_path: Path
) -> None:
    """Over the phone line the caller keys the number, listens in silence to its read-back,
    then corrects a digit in a sentence ("no, the third digit is two"). The endpointer's
    speech detector rests on a quiet line and hears the last quiet frames when it wakes:
    with 200 ms of them it ended this turn inside the sentence (1.1 s after it began), and
    the number was never corrected; with 500 ms the turn is whole."""
    runner = QaRunner(settings, db_dir=tmp_path, condition="phone")
    report = runner.run_path(
        REPO / "tests" / "calls" / "ticket_status_digit_corrected" / "call.yaml"
    )
    assert report.passed, report.error


def test_hangup_leaves_complete_record(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(REPO / "tests" / "calls" / "hangup_midway" / "call.yaml")
    conn = _connect_for(runner, report.call_id)
    row = conn.execute(
        "SELECT outcome, ended_at, states, caller_masked FROM calls WHERE id = ?", (report.call_id,)
    ).fetchone()
    assert row[0] == "abandoned" and row[1] is not None
    assert json.loads(row[2])[-1] == "send_code" or "verification_code" in json.loads(row[2])
    assert row[3] == "*******8000"
    asks = [
        r[0]
        for r in conn.execute(
            "SELECT ask FROM turns WHERE call_id = ? ORDER BY seq", (report.call_id,)
        )
    ]
    assert asks == ["main_menu", "confirm_caller_id", "verification_code"]


def test_codes_and_numbers_never_in_transcripts(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(REPO / "tests" / "calls" / "recovery_spoken_number" / "call.yaml")
    conn = _connect_for(runner, report.call_id)
    text = " ".join(
        r[0] or ""
        for r in conn.execute(
            "SELECT text FROM transcript UNION ALL SELECT heard FROM turns UNION ALL "
            "SELECT value FROM turns UNION ALL SELECT case_json FROM agent_queue"
        )
    )
    assert "482913" not in text and "482 913" not in text
    assert "13800138000" not in text and "138 0013" not in text
    assert report.passed


@pytest.mark.parametrize(
    ("call", "ask", "secrets"),
    [
        ("recovery_code_keyed_tail", "confirm_verification_code", ["482910", "482913", "*13"]),
        ("recovery_phone_tail_corrected", "confirm_phone_number", ["13800138001", "ends in"]),
    ],
)
def test_corrections_at_read_backs_stay_masked(  # type: ignore[no-untyped-def]
    runner, call: str, ask: str, secrets: list[str]
) -> None:
    """A correction at the read-back of a code or phone number is as secret as the number."""
    report = runner.run_path(REPO / "tests" / "calls" / call / "call.yaml")
    assert report.passed, report.error
    conn = _connect_for(runner, report.call_id)
    rows = conn.execute(
        "SELECT heard, value FROM turns WHERE call_id = ? AND ask = ?", (report.call_id, ask)
    ).fetchall()
    assert len(rows) >= 2  # the correction, then the answer to the corrected read-back
    text = " ".join(
        r[0] or ""
        for r in conn.execute(
            "SELECT text FROM transcript UNION ALL SELECT heard FROM turns UNION ALL "
            "SELECT value FROM turns"
        )
    )
    for secret in secrets:
        assert secret not in text, secret
    assert any(v == "yes" for _, v in rows)


def test_qa_run_json_and_exit_code(tmp_path: Path, ivr_home: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "call.yaml").write_text(
        "name: expects the wrong outcome\nturns:\n  - dtmf: '0'\nexpect:\n  outcome: resolved\n"
    )
    env = {"IVR_HOME": str(ivr_home), "PATH": "/usr/bin:/bin"}
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "ivr.cli",
            "qa",
            "run",
            "--json",
            str(REPO / "tests/calls/silence_at_menu"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr
    doc = json.loads(good.stdout)
    assert doc["passed"] == 1 and doc["failed"] == 0
    call = doc["calls"][0]
    assert call["outcome"] == "transferred" and call["transfer_reason"] == "no_input"
    assert [t["mode"] for t in call["turns"]] == ["no_input"] * 3
    failing = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "qa", "run", "--json", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert failing.returncode == 1
    assert json.loads(failing.stdout)["calls"][0]["transfer_reason"] == "caller_request"


def test_missing_audio_names_call_and_turn(tmp_path: Path, runner) -> None:  # type: ignore[no-untyped-def]
    call = tmp_path / "broken"
    call.mkdir()
    (call / "call.yaml").write_text(
        "name: broken\nturns:\n  - dtmf: '1'\n  - audio: turns/02.wav\n"
    )
    report = runner.run_path(call / "call.yaml")
    assert not report.passed
    assert "turn #2" in report.error and "02.wav" in report.error
    (call / "turns").mkdir()
    (call / "turns" / "02.wav").write_bytes(b"RIFF....not a wav")
    report = runner.run_path(call / "call.yaml")
    assert not report.passed and "turn #2" in report.error


def test_asr_command_json(tmp_path: Path, ivr_home: Path) -> None:
    from ivr.qa.synth import write_caller_wav

    wav = write_caller_wav(tmp_path / "yes.wav", "yes")
    out = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "asr", str(wav), "--grammar", "yes_no", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"IVR_HOME": str(ivr_home), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[0])
    assert row["value"] == "yes" and row["file"] == str(wav)
    assert row["engine"].startswith("pocketsphinx")  # the decoder heard it; Whisper may agree


def test_resend_sends_a_second_text(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(REPO / "tests" / "calls" / "resend_code" / "call.yaml")
    conn = _connect_for(runner, report.call_id)
    kinds = [r[0] for r in conn.execute("SELECT kind FROM sms_outbox ORDER BY id")]
    assert kinds == ["verification_code", "verification_code"]
    assert [t["value"] for t in report.turns][2] == "resend"
    assert report.outcome == "resolved"


def test_repeat_and_slower_replay_the_prompt(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(REPO / "tests" / "calls" / "repeat_and_slower" / "call.yaml")
    conn = _connect_for(runner, report.call_id)
    lines = [
        r[0]
        for r in conn.execute(
            "SELECT text FROM transcript WHERE call_id = ? AND speaker = 'ivr' ORDER BY seq",
            (report.call_id,),
        )
    ]
    menu = [line for line in lines if line.startswith("How can I help you today?")]
    assert len(menu) == 3  # first time, after "repeat", after "slower"
    assert any("more slowly" in line for line in lines)


def test_walkthrough_case_names_the_step(runner) -> None:  # type: ignore[no-untyped-def]
    report = runner.run_path(REPO / "tests" / "calls" / "walkthrough_stuck" / "call.yaml")
    conn = _connect_for(runner, report.call_id)
    case = json.loads(conn.execute("SELECT case_json FROM agent_queue").fetchone()[0])
    assert case["reason"] == "stuck_on_step" and case["step"] == "reset_password step 3"
    assert case["verified"] is True and case["intent"] == "account_recovery"
    steps = [
        line
        for line in (t["speaker"] + ":" + t["text"] for t in case["transcript"])
        if line.startswith("ivr:Step ")
    ]
    assert [s.split(".")[0] for s in steps] == [
        "ivr:Step 1 of 4",
        "ivr:Step 2 of 4",
        "ivr:Step 2 of 4",
        "ivr:Step 1 of 4",
        "ivr:Step 2 of 4",
        "ivr:Step 3 of 4",
    ]


def test_keys_only_recovery_over_a_telephone_rate_channel(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    narrow = QaRunner(settings, sample_rate=8000, db_dir=tmp_path)
    report = narrow.run_path(REPO / "tests" / "calls" / "recovery_keys_only" / "call.yaml")
    assert report.passed, report.error
