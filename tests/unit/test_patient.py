"""Patient mode: the policy (when it switches, what it changes) and the remembered callers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ivr.config import Patient, Settings
from ivr.dialog.patient import TAIL, TAIL_DIGITS, PatientMode, ending_with
from ivr.dialog.prompts import PromptBook, SpokenDigits, group_digits
from ivr.services.migrations import LATEST
from ivr.services.patients import DAY_SEC, PatientCallers
from ivr.services.privacy import caller_key
from ivr.services.store import Store
from ivr.speech.grammar import COMMAND_PREFIX, GrammarBook
from ivr.speech.tts import Pause, Segment

REPO = Path(__file__).resolve().parents[2]
NUMBER = "13800138000"


def test_slower_twice_switches_on_once() -> None:
    mode = PatientMode()
    assert not mode.on_slower() and not mode.active
    assert mode.on_slower() and mode.active and mode.ever
    assert not mode.on_slower()  # already on: said once, not again


def test_failures_in_a_row_switch_on_and_a_good_answer_resets_the_count() -> None:
    mode = PatientMode()
    assert not mode.on_failure()
    mode.on_answer()
    assert not mode.on_failure()  # one in a row again
    assert mode.on_failure() and mode.active
    assert not mode.on_failure()


def test_the_thresholds_are_settings() -> None:
    mode = PatientMode(Patient(slower_requests=1, failures_in_a_row=3))
    assert mode.on_slower()
    mode = PatientMode(Patient(failures_in_a_row=3))
    assert not mode.on_failure() and not mode.on_failure() and mode.on_failure()


def test_leaving_starts_every_count_again() -> None:
    mode = PatientMode()
    assert not mode.leave()  # not patient: nothing to leave
    mode.on_slower()
    mode.on_slower()
    assert mode.leave() and not mode.active and mode.ever
    assert not mode.on_slower()  # two more "slower" needed
    assert not mode.on_failure() and mode.on_failure()


def test_what_patient_mode_changes() -> None:
    config = Patient()
    mode = PatientMode(config)
    code = SpokenDigits("482913", "auto", keep=0)
    assert mode.speed(0) == 0 and mode.speed(1) == 1
    assert mode.no_input_ms(8000) == 8000 and mode.no_input_ms(6000) == 6000
    assert mode.params({"code": code}) == {"code": code}
    assert mode.tail(digit_entry=False) is None
    mode.start_remembered()
    assert mode.active and mode.remembered
    assert mode.speed(0) == config.slower and mode.speed(1) == config.slower + 1
    assert mode.no_input_ms(8000) == 12000 and mode.no_input_ms(6000) == 12000
    assert mode.no_input_ms(20000) == 20000  # never shorter than the ask's own
    paired = mode.params({"code": code, "brand": "x"})
    assert paired["brand"] == "x" and paired["code"].groups() == ["48", "29", "13"]
    assert paired["code"].transcript() == "** ** **"  # still masked
    assert mode.tail(digit_entry=False) == TAIL and mode.tail(digit_entry=True) == TAIL_DIGITS


def test_pairs_of_an_odd_count_start_with_three() -> None:
    assert group_digits(NUMBER, "pairs") == ["138", "00", "13", "80", "00"]
    assert group_digits("8000", "pairs") == ["80", "00"]
    assert group_digits("20261120", "pairs") == ["20", "26", "11", "20"]


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_patient_prompts_and_the_normal_speed_command(locale: str) -> None:
    settings = Settings(home=REPO)
    book = PromptBook(settings.prompts_dir, locale)
    for pid in ("patient_on", "patient_remembered", "normal_speed_ack", TAIL, TAIL_DIGITS):
        assert book.text(pid)
    assert "0" in book.text(TAIL)
    normal = book.speech("anything_else", voice=settings.voice)
    slow = book.speech("anything_else", voice=settings.voice, slower=PatientMode().config.slower)
    rate = {p.rate_wpm for p in normal.parts if isinstance(p, Segment)}
    slow_rate = {p.rate_wpm for p in slow.parts if isinstance(p, Segment)}
    assert max(slow_rate) < min(rate)
    pauses = sum(p.ms for p in normal.parts if isinstance(p, Pause))
    assert sum(p.ms for p in slow.parts if isinstance(p, Pause)) > pauses
    tailed = ending_with(slow, book.speech(TAIL, voice=settings.voice, slower=2), 900)
    assert tailed.transcript == f"{slow.transcript} {book.text(TAIL)}"
    assert Pause(900) in tailed.parts
    grammars = GrammarBook(settings.grammars_dir, locale)
    phrase = grammars.commands.values["normal_speed"][0]
    menu = grammars.get("main_menu")
    assert menu.phrases[phrase] == COMMAND_PREFIX + "normal_speed"
    assert COMMAND_PREFIX + "normal_speed" not in menu.keys.values()  # speech only


def test_remembered_callers_expire_and_are_forgotten(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = Store(tmp_path / "ivr.sqlite3")
    assert store.version == LATEST
    callers = PatientCallers(store, b"k" * 32, remember_days=180, clock=lambda: now[0])
    assert not callers.remembers(NUMBER) and not callers.remembers(None)
    callers.remember(NUMBER)
    callers.remember(None)  # a caller without a number is never remembered
    assert callers.remembers(NUMBER) and not callers.remembers("13900139000")
    now[0] += 179 * DAY_SEC
    callers.remember(NUMBER)  # a patient call again: 180 days from now
    now[0] += 179 * DAY_SEC
    assert callers.remembers(NUMBER)
    now[0] += 2 * DAY_SEC
    assert not callers.remembers(NUMBER)  # expired
    callers.remember("13900139000")  # writing removes the expired rows
    rows = store.query("SELECT caller_hash FROM patient_callers")
    assert [r["caller_hash"] for r in rows] == [caller_key("13900139000", b"k" * 32)]
    callers.forget("13900139000")
    assert not callers.remembers("13900139000")
    store.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "ivr.sqlite3").iterdump())
    assert "13900139000" not in dump and NUMBER not in dump
