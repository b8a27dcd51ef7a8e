"""Recovery that fraud cannot farm, through the real session: the audit log of a normal
recovery (and `ivr recovery audit`), the case of a held caller, and recordings that keep
none of the caller's audio while a code is asked or read back."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from ivr.channels.base import ChannelEvent, Frame
from ivr.channels.scripted import ScriptedChannel
from ivr.qa.runner import QaRunner
from ivr.qa.tape import CallTape
from ivr.qa.testcall import load_call
from ivr.services.store import Store
from ivr.session import Runtime
from ivr.speech.audio import Audio, frame_samples
from tests.conftest import REPO

CALLS = REPO / "tests" / "calls"
CODE_ASKS = ("verification_code", "confirm_verification_code")


@pytest.fixture(scope="module")
def runner(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    return QaRunner(
        settings,
        db_dir=tmp_path_factory.mktemp("guard-db"),
        record_dir=tmp_path_factory.mktemp("guard-rec"),
    )


def _db(runner: QaRunner, call_id: str) -> Path:
    for db in runner.db_dir.glob("*.sqlite3"):
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone():
                return db
    raise AssertionError(f"no database holds call {call_id}")


def test_a_normal_recovery_leaves_its_audit_rows(runner: QaRunner, ivr_home: Path) -> None:
    report = runner.run_path(CALLS / "recovery_keys_only" / "call.yaml")
    assert report.passed, report.error
    db = _db(runner, str(report.call_id))
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT call_id, caller_masked, account_masked, step, result FROM recovery_audit"
            " ORDER BY id"
        ).fetchall()
        kept = json.dumps(
            [
                list(r)
                for table in ("recovery_attempts", "recovery_audit", "recovery_alerts")
                for r in conn.execute(f"SELECT * FROM {table}")
            ]
        )
    who = (report.call_id, "*******0000")
    assert rows == [
        (*who, None, "start", "unknown_caller"),
        (*who, "*******8000", "phone_number", "found"),
        (*who, "*******8000", "send_code", "sent"),
        (*who, "*******8000", "verify_code", "ok"),
        (*who, "*******8000", "reset_password", "walked_through"),
        (*who, "*******8000", "recovery_worked", "yes"),
    ]
    # neither number in clear in what recovery keeps (attempts hold keyed hashes)
    assert "13800138000" not in kept and "10000000000" not in kept and "8000" in kept
    shown = subprocess.run(
        [sys.executable, "-m", "ivr", "recovery", "audit", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IVR_HOME": str(ivr_home)},
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert [(r["step"], r["result"]) for r in reversed(listed)] == [r[3:] for r in rows]
    assert {r["call_id"] for r in listed} == {report.call_id}
    assert "13800138000" not in shown.stdout
    text = subprocess.run(
        [sys.executable, "-m", "ivr", "recovery", "audit", "--db", str(db), "--account", "8000"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IVR_HOME": str(ivr_home)},
        check=False,
    ).stdout
    assert len(text.splitlines()) == 5 and "verify_code" in text and "unknown_caller" not in text


def test_a_held_caller_reaches_an_agent_with_the_reason(runner: QaRunner) -> None:
    report = runner.run_path(CALLS / "recovery_security_hold_keys" / "call.yaml")
    assert report.passed, report.error
    with sqlite3.connect(_db(runner, str(report.call_id))) as conn:
        reason, case_json = conn.execute("SELECT reason, case_json FROM agent_queue").fetchone()
        audit = conn.execute("SELECT step, result, detail FROM recovery_audit").fetchall()
        attempts = conn.execute("SELECT COUNT(*) FROM recovery_attempts").fetchone()[0]
    case = json.loads(case_json)
    assert reason == case["reason"] == "security_hold"
    why = "5 recovery attempts for this calling number in the last 24 h (limit 5)"
    assert case["collected"]["security_hold"] == why
    assert audit == [("start", "held:calling_number_limit", why)]
    assert attempts == 5  # the held call added none


class WatchedChannel(ScriptedChannel):
    """The scripted channel, noting what the caller really sent and when each ask began."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.sent: list[np.ndarray] = []  # the caller's frames as fed to the dialog
        self.marks: list[tuple[str, str, int]] = []  # (what, ask, clock)

    def receive(self) -> ChannelEvent:
        event = super().receive()
        if isinstance(event, Frame):
            self.sent.append(event.samples)
        return event

    def asking(self, ask: str) -> None:
        self.marks.append(("asking", ask, self.clock))
        super().asking(ask)

    def listening(self, ask: str) -> None:
        self.marks.append(("listening", ask, self.clock))
        super().listening(ask)

    def play(self, audio: Audio) -> None:
        self.marks.append(("play", "", self.clock))
        super().play(audio)

    def turn_spans(self) -> list[tuple[str, int, int]]:
        """Each answer: from the moment the IVR listens to the next prompt (frames)."""
        spans = []
        for i, (what, ask, at) in enumerate(self.marks):
            if what == "listening":
                end = next((c for w, _, c in self.marks[i + 1 :] if w == "play"), self.clock)
                spans.append((ask, at, end))
        return spans


def test_recording_holds_silence_while_a_code_is_spoken(runner: QaRunner) -> None:
    call = load_call(CALLS / "recovery_caller_id" / "call.yaml")  # every answer spoken
    channel = WatchedChannel(call.turns, sample_rate=runner.sample_rate, caller_id=call.caller_id)
    report = runner.run_call(call, channel=channel)
    assert report.passed, report.error
    assert report.recording is not None
    with wave.open(report.recording, "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == channel.sample_rate
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)
    caller = stereo[:, 0]
    sent = np.concatenate(channel.sent)
    n = frame_samples(channel.sample_rate)
    assert len(caller) >= len(sent) == channel.clock * n  # same length: the timeline holds
    # the span of the code: from its ask's prompt to the prompt after its read-back's answer
    start = next(c for w, a, c in channel.marks if w == "asking" and a == "verification_code")
    end = next(e for a, _, e in channel.turn_spans() if a == "confirm_verification_code")
    assert np.abs(sent[start * n : end * n]).max() > 1000  # the caller did speak there
    assert not caller[start * n : end * n].any()  # and the recording holds digital silence
    # the channel was told: one span for the ask and one for its read-back, back to back
    spans = channel.private_spans
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    outside = np.concatenate([caller[: start * n], caller[end * n :]])
    assert np.array_equal(outside, np.concatenate([sent[: start * n], sent[end * n :]]))
    spoken = [(a, s, e) for a, s, e in channel.turn_spans() if a not in CODE_ASKS]
    assert len(spoken) == 8  # menu, caller ID, 4 steps, worked, anything else
    for ask, s, e in spoken:
        assert np.abs(caller[s * n : e * n]).max() > 1000, f"{ask}: the caller's answer is kept"


def test_a_recorded_call_keeps_no_audio_of_a_spoken_code(
    runner: QaRunner, settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    call = load_call(CALLS / "recovery_caller_id" / "call.yaml")
    runtime = Runtime(
        settings, store=Store(tmp_path / "tape.sqlite3"), engines=runner.engines, synth=runner.synth
    )
    runtime.accounts.add("13800138000", "Wang Fang")
    tape = CallTape(ScriptedChannel(call.turns, caller_id=call.caller_id))
    result = runtime.run_call(tape, locale="en-US", fixed_code="482913", observer=tape.observe)
    assert str(result.outcome) == "resolved"
    saved = tape.save(tmp_path / "rec", result)
    turns = yaml.safe_load(saved.read_text())["turns"]
    by_ask = {t["ask"]: t for t in turns}
    for ask in CODE_ASKS:
        assert by_ask[ask] == {"silence": True, "ask": ask, "private": "speech"}
    assert by_ask["main_menu"]["audio"].endswith("main_menu.wav")
    wavs = sorted(p.name for p in (tmp_path / "rec" / "turns").iterdir())
    assert len(wavs) == 8 and not any("verification" in name for name in wavs)
    assert load_call(saved, synthesize=False).turns  # the raw tape loads as a test call
