"""The encoder's window at each ask (``WhisperEngine.window_for``): a number of several
digits is heard over ``[asr] number_window_sec``, everything else over Whisper's 30 s, and
what the shorter window heard stands only when it is a whole number of a usual shape.

Logic only, with a stand-in for the worker pool; what the shorter window hears on the
recordings is measured in bench/asr.py and bench/zh_digits.py (README, *A shorter window
for numbers*), and every end-to-end call that says a number goes through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.config import load_settings
from ivr.errors import ConfigError
from ivr.speech.asr.whisper import EarlyDecode, WhisperEngine
from ivr.speech.asr.whisper_decode import WINDOW_SEC, Decoded
from ivr.speech.grammar import DigitRule, GrammarBook
from tests.conftest import REPO

RATE = 8000
EN = GrammarBook(REPO / "grammars", "en-US")


class Pool:
    """Decodes nothing: writes ``short`` over a shorter window and ``whole`` over 30 s, and
    records the window each decode was sent with."""

    def __init__(self, short: str = "", whole: str = "") -> None:
        self.written = {"short": short, "whole": whole}
        self.windows: list[float] = []

    def run(self, fn: Any, *args: Any) -> Decoded:
        window = args[-1]
        self.windows.append(window)
        text = self.written["whole" if window == WINDOW_SEC else "short"]
        return Decoded(text, -0.2, 0.0, 1.0)


TICKET = "two zero two six, one one two zero"


def engine(
    number_window: float = 15.0, short: str = TICKET, whole: str = TICKET
) -> tuple[WhisperEngine, Pool]:
    pool = Pool(short, whole)
    whisper = WhisperEngine(
        Path("unused"),
        "en-US",
        pool=pool,
        number_window_sec=number_window,  # type: ignore[arg-type]
    )
    return whisper, pool


def audio(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


@pytest.mark.parametrize(
    ("ask", "said"),
    [
        ("ticket_number", TICKET),
        ("verification_code", "four eight two, nine one three"),
        ("phone_number", "one three eight, zero zero one three, eight zero zero zero"),
    ],
)
def test_a_whole_number_heard_over_the_shorter_window_stands(ask: str, said: str) -> None:
    whisper, pool = engine(short=said, whole="")
    assert whisper.window_for(EN.get(ask), audio(6), RATE) == 15.0
    assert whisper.transcribe(audio(6), RATE, EN.get(ask)).text == said
    assert pool.windows == [15.0]


@pytest.mark.parametrize(
    ("ask", "short"),
    [
        ("ticket_number", "two zero two six, one one two zero zero"),  # a digit too many
        ("phone_number", "one three eight, zero zero one three, eight zero zero zero zero"),
        ("verification_code", ""),  # nothing
        ("verification_code", "thank you"),
    ],
)
def test_anything_but_a_whole_usual_number_is_heard_again_over_the_whole_window(
    ask: str, short: str
) -> None:
    whole = {"ticket_number": TICKET, "verification_code": "four eight two, nine one three"}
    said = whole.get(ask, "one three eight, zero zero one three, eight zero zero zero")
    whisper, pool = engine(short=short, whole=said)
    assert whisper.transcribe(audio(6), RATE, EN.get(ask)).text == said
    assert pool.windows == [15.0, WINDOW_SEC]


def test_a_number_too_long_for_the_shorter_window_is_heard_over_the_whole_one() -> None:
    whisper, pool = engine(short="")
    # 14.5 s of audio and the 0.3 s edges on each side do not fit in 15 s
    assert whisper.window_for(EN.get("phone_number"), audio(14.5), RATE) == WINDOW_SEC
    whisper.transcribe(audio(14.5), RATE, EN.get("phone_number"))
    assert pool.windows == [WINDOW_SEC]


def test_every_other_ask_and_a_lone_digit_are_heard_over_the_whole_window() -> None:
    whisper, pool = engine(short="", whole="")
    lone_digit = EN.get("digits", commands=False, digits=DigitRule(1, 1))
    for grammar in (EN.get("yes_no"), EN.get("main_menu"), lone_digit, None):
        assert whisper.window_for(grammar, audio(2), RATE) == WINDOW_SEC
        whisper.transcribe(audio(2), RATE, grammar)
    assert pool.windows == [WINDOW_SEC] * 4


def test_an_explicit_window_and_the_setting_at_30_are_kept() -> None:
    whisper, pool = engine()
    whisper.transcribe(audio(2), RATE, EN.get("ticket_number"), window_sec=10.0)
    assert pool.windows == [10.0]
    whisper, _ = engine(WINDOW_SEC)
    assert whisper.window_for(EN.get("ticket_number"), audio(6), RATE) == WINDOW_SEC


def test_the_setting_is_checked(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).asr.number_window_sec == 15.0
    config = tmp_path / "bad.toml"
    config.write_text("[asr]\nnumber_window_sec = 2\n")
    with pytest.raises(ConfigError, match="number_window_sec"):
        load_settings(config, home=tmp_path)


def test_a_number_decoded_while_the_caller_is_quiet_is_heard_again_the_same_way() -> None:
    """The decode begun in the endpointer's wait (which ends the turn when the number is
    whole) goes the same way: a digit too many over the shorter window, then 30 s."""
    whisper, pool = engine(short="two zero two six, one one two zero zero")
    early = EarlyDecode(whisper, EN.get("ticket_number"), RATE)
    early.start([audio(6)], wait=True)
    assert early.text() == TICKET
    assert pool.windows == [15.0, WINDOW_SEC] and early.window_sec == 15.0
