"""Patient mode through the real session: calls from one number on one database, the longer
no-input timeout, and prompts that really take longer to say."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.channels.scripted import ScriptedChannel
from ivr.dialog.engine import Dialog
from ivr.dialog.prompts import PromptBook
from ivr.qa.runner import CallReport, QaRunner
from ivr.qa.testcall import load_call
from ivr.services.calls import CallRecorder
from ivr.services.privacy import caller_key, secret_key
from ivr.services.store import Store
from ivr.speech.audio import Audio
from ivr.speech.grammar import GrammarBook
from ivr.speech.tts import Speech
from ivr.speech.voices import voice_for
from tests.conftest import REPO

CALLS = REPO / "tests" / "calls"
NUMBER = "13800138000"
LATE_SEC = 10  # longer than the 8 s a menu waits, shorter than patient mode's 12 s


def _write_call(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "call.yaml").write_text(body, encoding="utf-8")
    return folder / "call.yaml"


def _spoken(report: CallReport) -> list[str]:
    return [e["text"] for e in report.transcript if e.get("speaker") == "ivr"]


def _db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def test_the_next_call_from_the_number_starts_patient(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "one.sqlite3"
    runner = QaRunner(settings, db_file=db)
    first = runner.run_path(CALLS / "patient_two_failures_keys" / "call.yaml")
    assert first.passed, first.error
    conn = _db(db)
    rows = conn.execute("SELECT caller_hash, expires_at - since AS kept FROM patient_callers")
    [(kept_hash, kept_sec)] = [(r["caller_hash"], r["kept"]) for r in rows]
    assert kept_hash == caller_key(NUMBER, secret_key(settings.caller_secret, settings.home))
    assert kept_sec == pytest.approx(settings.patient.remember_days * 86400)
    assert NUMBER not in kept_hash

    # the same number calls again (no fixture says it is patient: the first call left that)
    second_call = load_call(CALLS / "patient_remembered" / "call.yaml")
    second_call.fixtures = {k: v for k, v in second_call.fixtures.items() if k != "patient"}
    second = runner.run_call(second_call)
    assert second.passed, second.error
    spoken = _spoken(second)
    assert spoken[1].startswith("As on your last call")  # right after the welcome
    assert spoken[2].endswith("Press 0 at any time for a person.")  # the menu

    # a third call leaves patient mode: the number is forgotten
    third = runner.run_path(
        _write_call(
            tmp_path / "leaves",
            f'name: leaves\ncaller_id: "{NUMBER}"\nturns:\n'
            '  - say: "normal speed"\n  - dtmf: "0"\n'
            "expect: {outcome: transferred, transfer_reason: caller_request}\n",
        )
    )
    assert third.passed, third.error
    assert "Of course. Back to normal speed." in _spoken(third)
    assert conn.execute("SELECT COUNT(*) FROM patient_callers").fetchone()[0] == 0
    fourth = runner.run_path(
        _write_call(
            tmp_path / "normal",
            f'name: normal again\ncaller_id: "{NUMBER}"\nturns:\n  - dtmf: "0"\n'
            "expect: {outcome: transferred}\n",
        )
    )
    assert fourth.passed, fourth.error
    assert not any("last call" in s or "at any time" in s for s in _spoken(fourth))

    # the record and the agents' case say which calls were patient
    patient = {r["id"]: bool(r["patient"]) for r in conn.execute("SELECT id, patient FROM calls")}
    assert [patient[r.call_id] for r in (first, second, third, fourth)] == [
        True,
        True,
        True,
        False,
    ]
    cases = {
        r["call_id"]: json.loads(r["case_json"])
        for r in conn.execute("SELECT call_id, case_json FROM agent_queue")
    }
    assert cases[third.call_id]["patient_mode"] is True
    assert cases[fourth.call_id]["patient_mode"] is False
    conn.close()
    runner.close()


@pytest.mark.parametrize("patient", [False, True], ids=["normal", "patient"])
def test_an_answer_after_ten_seconds_is_heard_only_in_patient_mode(  # type: ignore[no-untyped-def]
    settings, tmp_path: Path, patient: bool
) -> None:
    path = _write_call(
        tmp_path / "late",
        f'name: late answer\ncaller_id: "{NUMBER}"\n'
        f"fixtures: {{patient: {str(patient).lower()}}}\n"
        'turns:\n  - say: "ticket status"\n  - hangup: true\n',
    )
    call = load_call(path)
    turn = call.turns[0]
    assert turn.audio is not None
    late = np.concatenate([np.zeros(turn.audio.rate * LATE_SEC, np.int16), turn.audio.samples])
    call.turns[0] = type(turn)(turn.kind, audio=Audio(late, turn.audio.rate), where=turn.where)
    runner = QaRunner(settings, db_dir=tmp_path)
    report = runner.run_call(call)
    first = report.turns[0]
    assert first["ask"] == "main_menu"
    if patient:
        assert first["mode"] == "speech" and first["value"] == "ticket_status"
    else:
        assert first["mode"] == "no_input"
    assert report.outcome == "abandoned"


def _seconds(runner: QaRunner, speech: Speech, voice: str) -> float:
    pieces: list[Audio] = list(runner.synth.stream(speech, voice=voice, sample_rate=16000))
    return sum(len(p.samples) for p in pieces) / 16000


@pytest.mark.parametrize("pid", ["anything_else", "confirm_ticket_number"])
def test_a_patient_prompt_takes_longer_to_say(settings, tmp_path: Path, pid: str) -> None:  # type: ignore[no-untyped-def]
    runner = QaRunner(settings, db_dir=tmp_path)
    store = Store(tmp_path / "prompt.sqlite3")
    dialog = Dialog(
        channel=ScriptedChannel([]),
        settings=settings,
        prompts=PromptBook(settings.prompts_dir, "en-US"),
        grammars=GrammarBook(settings.grammars_dir, "en-US"),
        synthesizer=runner.synth,
        engine=None,
        recorder=CallRecorder(store, channel="scripted", locale="en-US", caller_id=None),
        voice=voice_for(settings.voice, "en-US"),
    )
    params: dict[str, Any] = {}
    if pid == "confirm_ticket_number":
        params["number"] = dialog.digits("20261120", "pairs")
    normal = dialog.speech(pid, params)
    normal_ask = dialog.ask_speech(pid, params, "text", 0, digit_entry=False)
    dialog.start_patient()
    slow = dialog.speech(pid, params)
    slow_ask = dialog.ask_speech(pid, params, "text", 0, digit_entry=False)
    assert normal_ask.transcript == normal.transcript
    assert slow_ask.transcript == slow.transcript + " Press 0 at any time for a person."
    normal_sec = _seconds(runner, normal, dialog.voice)
    slow_sec = _seconds(runner, slow, dialog.voice)
    assert slow_sec > normal_sec * 1.15, (normal_sec, slow_sec)
    assert _seconds(runner, slow_ask, dialog.voice) > slow_sec + 1.0
    store.close()
