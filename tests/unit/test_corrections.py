"""Corrections at a read-back: what a caller says or keys after "no", parsed and applied."""
# ruff: noqa: RUF001 - Mandarin commas in what callers say

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ivr.dialog.corrections import (
    CORRECTION,
    LAST,
    Correction,
    CorrectionForms,
    Kind,
    Target,
    from_keys,
    load_forms,
)
from ivr.errors import ConfigError
from ivr.speech.grammar import DigitRule, Grammar, GrammarBook

REPO = Path(__file__).resolve().parents[2]
PHONE = DigitRule(7, 15)
CODE = DigitRule(6, 6)
TICKET = DigitRule(8, 8)


def read_back(locale: str) -> Grammar:
    book = GrammarBook(REPO / "grammars", locale)
    return book.get("yes_no", extension=load_forms(REPO / "grammars", locale))


EN = read_back("en-US")
ZH = read_back("zh-CN")


def parsed(grammar: Grammar, text: str) -> Correction | None:
    meant = grammar.interpret(text)
    if meant is None or meant.value != CORRECTION:
        return None
    assert isinstance(meant.detail, Correction) and meant.digits == meant.detail.digits
    return meant.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the tail
        ("No, it ends in 8 0 0 0.", Correction(Kind.TAIL, "8000")),
        ("no, it ends in eight zero zero zero", Correction(Kind.TAIL, "8000")),
        ("No, it ends in eight, oh, oh, oh.", Correction(Kind.TAIL, "8000")),
        ("It ends with 8000", Correction(Kind.TAIL, "8000")),  # no "no" needed
        ("nope, the last four digits are 8 0 0 0", Correction(Kind.TAIL, "8000")),
        ("no the last 4 digits are eight zero zero zero", Correction(Kind.TAIL, "8000")),
        ("Wrong. The last digits are 13.", Correction(Kind.TAIL, "13")),
        # one position
        ("No, the third digit is five.", Correction(Kind.POSITION, "5", 3)),
        ("no the third digit is 5", Correction(Kind.POSITION, "5", 3)),
        ("No, the 3rd digit is five.", Correction(Kind.POSITION, "5", 3)),
        ("no the fifteenth digit is nine", Correction(Kind.POSITION, "9", 15)),
        ("No, the last digit is seven.", Correction(Kind.POSITION, "7", LAST)),
        ("first digit is oh", Correction(Kind.POSITION, "0", 1)),
        # the whole number again
        ("No, 1 3 8 0 0 1 3 8 0 0 0.", Correction(Kind.WHOLE, "13800138000")),
        ("No, 138-0013-8000.", Correction(Kind.WHOLE, "13800138000")),
        (
            "No, one three eight, zero zero one three, eight zero zero zero.",
            Correction(Kind.WHOLE, "13800138000"),
        ),
        ("no, it's four eight two nine one three", Correction(Kind.WHOLE, "482913")),
        ("no no, it is 482913", Correction(Kind.WHOLE, "482913")),
    ],
)
def test_english_corrections(text: str, expected: Correction) -> None:
    assert parsed(EN, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("不对，最后四位是8000", Correction(Kind.TAIL, "8000")),
        ("不对，最后四位是八零零零。", Correction(Kind.TAIL, "8000")),
        ("不对，最后4位是8000", Correction(Kind.TAIL, "8000")),
        ("不对，最后两位是二零", Correction(Kind.TAIL, "20")),
        ("不是，尾号是八零零零", Correction(Kind.TAIL, "8000")),
        ("不是，第三位是5", Correction(Kind.POSITION, "5", 3)),
        ("不是第三位是五。", Correction(Kind.POSITION, "5", 3)),
        ("不对,第三位是二。", Correction(Kind.POSITION, "2", 3)),
        ("第十一位是九", Correction(Kind.POSITION, "9", 11)),
        ("第11位是9", Correction(Kind.POSITION, "9", 11)),
        ("不对，最后一位应该是七", Correction(Kind.POSITION, "7", LAST)),
        ("不对，138 0013 8000", Correction(Kind.WHOLE, "13800138000")),
        ("不对，幺三八零零幺三八零零零", Correction(Kind.WHOLE, "13800138000")),
        ("不是，应该是四八二九一三", Correction(Kind.WHOLE, "482913")),
        ("不对，最后四位是巴零零零", Correction(Kind.TAIL, "8000")),  # 巴 sounds like 八
        ("不对，最後四位是八零零零", Correction(Kind.TAIL, "8000")),  # 後 sounds like 后
    ],
)
def test_mandarin_corrections(text: str, expected: Correction) -> None:
    assert parsed(ZH, text) == expected


@pytest.mark.parametrize(
    ("grammar", "text", "value"),
    [
        (EN, "no", "no"),
        (EN, "No, no.", "no"),
        (EN, "yes", "yes"),
        (EN, "That's right.", "yes"),
        (EN, "no oh", "no"),  # a decoder's stray digit after "no" is no number
        (EN, "no the last four digits are 8 0 0", "no"),  # four said, three given: no correction
        (EN, "no the twentieth digit is five", "no"),  # no such ordinal: just "no"
        (EN, "no the third digit is fifty five", "no"),  # one digit, not two
        (EN, "agent", "@agent"),
        (ZH, "不对", "no"),
        (ZH, "是的", "yes"),
        (ZH, "不对，最后四位是八零零", None),  # 四位 but three digits: no match, asked again
        (ZH, "人工", "@agent"),
    ],
)
def test_plain_answers_and_bad_corrections(grammar: Grammar, text: str, value: str | None) -> None:
    meant = grammar.interpret(text)
    assert (meant.value if meant else None) == value


@pytest.mark.parametrize(
    ("text"), ["it ends in", "the third digit is", "ends in banana", "第三位是", "最后四位是"]
)
def test_forms_without_their_digits_are_no_answer(text: str) -> None:
    grammar = ZH if any("\u4e00" <= c <= "\u9fff" for c in text) else EN
    assert parsed(grammar, text) is None


@pytest.mark.parametrize(
    ("correction", "number", "rule", "expected"),
    [
        (Correction(Kind.TAIL, "8000"), "13800138001", PHONE, "13800138000"),
        (Correction(Kind.TAIL, "13"), "482910", CODE, "482913"),
        (Correction(Kind.TAIL, "482913"), "111111", CODE, "482913"),  # the tail is all of it
        (Correction(Kind.TAIL, "1234567"), "482910", CODE, None),  # longer than the code
        (Correction(Kind.POSITION, "2", 3), "20361120", TICKET, "20261120"),
        (Correction(Kind.POSITION, "0", LAST), "20261121", TICKET, "20261120"),
        (Correction(Kind.POSITION, "0", 1), "482913", CODE, "082913"),
        (Correction(Kind.POSITION, "5", 9), "20261120", TICKET, None),  # no ninth digit
        (Correction(Kind.POSITION, "55", 2), "20261120", TICKET, None),  # one digit only
        (Correction(Kind.WHOLE, "13800138000"), "13912345678", PHONE, "13800138000"),
        (Correction(Kind.WHOLE, "4829"), "482910", CODE, None),  # outside the length rules
        (Correction(Kind.WHOLE, "2026112"), "20261121", TICKET, None),
    ],
)
def test_applying_a_correction_keeps_the_rest(
    correction: Correction, number: str, rule: DigitRule, expected: str | None
) -> None:
    assert correction.apply(number, rule) == expected


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("*13#", Correction(Kind.TAIL, "13")),
        ("*8000", Correction(Kind.TAIL, "8000")),
        ("20261120#", Correction(Kind.WHOLE, "20261120")),
        ("13800138000", Correction(Kind.WHOLE, "13800138000")),
        ("*#", None),
        ("*1*2", None),
        ("12*3", None),
        ("#", None),
    ],
)
def test_keys(keys: str, expected: Correction | None) -> None:
    assert from_keys(keys) == expected


def test_partial_answers_that_may_go_on_are_not_complete() -> None:
    assert EN.is_complete("yes")
    assert not EN.is_complete("no")  # "no, it ends in ..." may follow
    assert not EN.is_complete("no it ends in eight")
    assert not ZH.is_complete("不对")


def test_every_correction_word_is_known_to_the_grammar_decoder(sphinx) -> None:  # type: ignore[no-untyped-def]
    assert sphinx.unknown_words(EN.words()) == []
    recognizer = sphinx.recognizer(EN, 16000)  # the JSGF compiles
    recognizer.close()


def test_the_read_back_grammar_compiles_the_forms() -> None:
    jsgf = EN.jsgf()
    assert "it ends in <c_digits>" in jsgf and "the <c_nth> digit is <c_digit>" in jsgf
    assert "3rd" not in jsgf  # figures are for transcribers, not a dictionary
    assert "it ends in" in EN.vosk_phrases() and "eight" in EN.vosk_phrases()


def test_bad_forms_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "_corrections.yaml"
    bad.write_text("tail: ['it ends in {digit}']\n")
    with pytest.raises(ConfigError, match=r"needs one \{digits\}"):
        CorrectionForms.load(bad)
    bad.write_text("tail: ['it ends in {number}']\n")
    with pytest.raises(ConfigError, match="unknown slot"):
        CorrectionForms.load(bad)
    bad.write_text("lead: ['no']\nmore: 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        CorrectionForms.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        CorrectionForms.load(tmp_path / "missing.yaml")


def test_a_locale_without_forms_hears_only_yes_and_no(tmp_path: Path) -> None:
    (tmp_path / "xx-XX").mkdir()
    assert load_forms(tmp_path, "xx-XX") is None
    assert load_forms(REPO / "grammars", "en-US") is load_forms(REPO / "grammars", "en-US")


@pytest.mark.parametrize(
    ("keys", "may"),
    [
        ("1", True),
        ("*", True),
        ("*13", True),
        ("482913", True),  # a whole code
        ("1111112", False),  # more than a code holds: typed ahead for the asks that follow
        ("*1234567", False),  # a tail longer than the code
        ("1*", False),  # yes, then * for the next ask
        ("*1*", False),
    ],
)
def test_keys_that_may_still_become_a_correction(keys: str, may: bool) -> None:
    assert Target("482910", CODE).may_be_keyed(keys) is may


def test_a_number_said_again_with_a_digit_too_many_is_unusual_at_its_read_back() -> None:
    """The read-back's forms carry the number's rules (the engine sets them per read-back):
    a number said again whole is judged by its usual shapes; a tail is never judged."""
    book = GrammarBook(REPO / "grammars", "en-US")
    forms = load_forms(REPO / "grammars", "en-US")
    assert forms is not None
    rule = book.get("phone_number").digits
    assert rule is not None and rule.usual
    heard = book.get("yes_no", extension=dataclasses.replace(forms, rule=rule))
    twelve = heard.interpret("no, one three eight, zero zero one three, eight zero zero zero zero")
    eleven = heard.interpret("no, one three eight, zero zero one three, eight zero zero zero")
    assert twelve is not None and twelve.value == CORRECTION and heard.unusual(twelve)
    assert eleven is not None and not heard.unusual(eleven)
    tail = heard.interpret("no, it ends in eight zero zero zero zero")
    assert tail is not None and tail.value == CORRECTION and not heard.unusual(tail)
    assert not EN.unusual(twelve)  # forms without a number's rules judge nothing
