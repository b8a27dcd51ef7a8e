"""One turn's meaning and what the call record keeps of it (ivr.dialog.turns)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.dialog.corrections import CORRECTION, Target, load_forms
from ivr.dialog.turns import (
    Heard,
    Mode,
    Sensitive,
    corrected,
    for_the_record,
    is_correction,
    keyed_digits,
    read_back_keys,
    spoken,
)
from ivr.speech.grammar import DigitRule, GrammarBook

REPO = Path(__file__).resolve().parents[2]
BOOK = GrammarBook(REPO / "grammars", "en-US")
PHONE = DigitRule(7, 15)
READ_BACK = BOOK.get("yes_no", extension=load_forms(REPO / "grammars", "en-US"))
NUMBER = "13812345678"


def test_keys_at_a_digit_ask_answer_only_within_the_length_rule() -> None:
    code = BOOK.get("digits", digits=DigitRule(6, 6))
    assert keyed_digits(code, "123456") == Heard(Mode.DTMF, "123456", "123456", 1.0, "123456")
    short = keyed_digits(code, "1234")
    assert short.value is None and short.digits == "1234"
    assert keyed_digits(code, "").value is None


def test_one_key_at_a_read_back_answers_and_more_keys_correct_the_number() -> None:
    assert read_back_keys(READ_BACK, "1").value == "yes"
    assert read_back_keys(READ_BACK, "2").value == "no"
    whole = read_back_keys(READ_BACK, "13812340000#")
    assert whole.value == CORRECTION
    fixed = corrected(whole, Target(NUMBER, PHONE))
    assert fixed.value == CORRECTION and fixed.digits == "13812340000"
    tail = corrected(read_back_keys(READ_BACK, "*8000"), Target(NUMBER, PHONE))
    assert tail.digits == "13812348000"


def test_a_correction_that_does_not_fit_the_number_is_no_match() -> None:
    too_long = corrected(read_back_keys(READ_BACK, "*123456789012"), Target(NUMBER, PHONE))
    assert too_long.value is None and too_long.confidence is None
    plain = Heard(Mode.SPEECH, "yes", "yes", 0.9)
    assert corrected(plain, Target(NUMBER, PHONE)) is plain


def test_speech_under_the_reject_threshold_is_no_match() -> None:
    yes_no = BOOK.get("yes_no")
    assert spoken(yes_no, "yes", 0.8, reject=0.45).value == "yes"
    assert spoken(yes_no, "yes", 0.3, reject=0.45).value is None
    assert spoken(yes_no, "banana", 0.9, reject=0.45).value is None
    heard = spoken(READ_BACK, "no it ends in eight zero zero zero", 0.8, reject=0.45)
    assert heard.value == CORRECTION and heard.correction is not None
    assert is_correction(READ_BACK, "no it ends in eight zero zero zero")
    assert not is_correction(READ_BACK, "yes") and not is_correction(READ_BACK, "")


@pytest.mark.parametrize(
    ("heard", "sensitive", "text", "value"),
    [
        # a code keyed or said never reaches the record; its length may
        (Heard(Mode.DTMF, "482913", "482913", 1.0, "482913"), Sensitive.CODE, "******", "******"),
        (
            Heard(Mode.SPEECH, "482913", "four eight two nine one three", 0.9, "482913"),
            Sensitive.CODE,
            "(code spoken)",
            "******",
        ),
        # a phone number shows its last four digits at most
        (
            Heard(Mode.DTMF, NUMBER, NUMBER, 1.0, NUMBER),
            Sensitive.PHONE,
            "*******5678",
            "*******5678",
        ),
        (
            Heard(Mode.SPEECH, NUMBER, "one three eight ...", 0.9, NUMBER),
            Sensitive.PHONE,
            "(number spoken)",
            "*******5678",
        ),
        # nothing secret heard: kept as heard
        (Heard(Mode.SPEECH, "yes", "yes", 0.9), Sensitive.CODE, "yes", "yes"),
        (Heard(Mode.NO_INPUT), Sensitive.PHONE, "", None),
    ],
)
def test_the_record_never_keeps_a_code_or_a_whole_number(
    heard: Heard, sensitive: Sensitive, text: str, value: str | None
) -> None:
    assert for_the_record(heard, sensitive) == (text, value)


def test_digits_said_at_a_read_back_are_as_secret_as_the_number() -> None:
    said = "no it ends in eight zero zero zero"
    heard = spoken(READ_BACK, said, 0.8, reject=0.45)
    text, _ = for_the_record(heard, Sensitive.PHONE, READ_BACK)
    assert text == "(number spoken)"
    unsure = Heard(Mode.SPEECH, None, "no it is five five five", 0.3)
    text, value = for_the_record(unsure, Sensitive.CODE, READ_BACK)
    assert text == "(code spoken)" and value is None
    assert for_the_record(unsure, None, READ_BACK) == ("no it is five five five", None)
