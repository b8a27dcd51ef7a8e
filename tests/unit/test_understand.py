"""Free text from a transcribing recogniser, mapped onto the grammars callers answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.speech.asr.choices import (
    Weighed,
    choices_for,
    choose,
    needs_weighing,
    outlasts,
    said_more,
)
from ivr.speech.grammar import DigitRule, Grammar, GrammarBook, normalize

REPO = Path(__file__).resolve().parents[2]
EN = GrammarBook(REPO / "grammars", "en-US")
ZH = GrammarBook(REPO / "grammars", "zh-CN")


def value(book: GrammarBook, grammar: str, text: str) -> str | None:
    meant = book.get(grammar).interpret(text)
    return None if meant is None else meant.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("138 0013 8000", "13800138000"),
        ("My number is 1 3 8 0 0 1 3 8 0 0 0.", "13800138000"),
        ("one three eight, oh oh one three, eight zero zero zero.", "13800138000"),
        ("one three eight double oh one three eight triple oh", "13800138000"),
        ("one thirty-eight, zero zero thirteen, eighty, zero zero", "13800138000"),
        ("one three eight zero zero", None),  # five digits: too short for a phone number
        ("Thank you.", None),
        ("six, six, six", None),  # what Whisper writes on keypad tones: too short
        ("one three eight and then I forgot the rest 0 0 1 3", None),  # words inside a number
    ],
)
def test_phone_numbers_in_free_text(text: str, expected: str | None) -> None:
    assert value(EN, "phone_number", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "yes"),
        ("Yes, that's right.", "yes"),
        ("No, it isn't.", "no"),
        ("Thank you.", None),
        ("you", None),
        ("I don't know.", None),
        ("yes no", None),  # two answers: no match, never a guess
    ],
)
def test_yes_no_in_free_text(text: str, expected: str | None) -> None:
    assert value(EN, "yes_no", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I forgot my password.", "account_recovery"),
        ("Um, I'd like to check my ticket, please.", "ticket_status"),
        ("agent", "@agent"),
        ("Can I talk to a person, please?", "@agent"),
        ("Operator.", "@agent"),
        # a command word buried in a long unrelated sentence is no clear request for a person
        ("the human resources department of my company sent me a letter yesterday", None),
        ("Thank you for watching.", None),
        ("live streaming and ticket status", None),  # two choices at once
    ],
)
def test_menu_in_free_text(text: str, expected: str | None) -> None:
    assert value(EN, "main_menu", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("是的。", "yes"),
        ("不是", "no"),  # the longer phrase hides 是 inside it
        ("对。", "yes"),
        ("人工", "@agent"),
        ("谢谢观看", None),
        ("市。", "yes"),  # a one-syllable answer alone, written with another character
        ("是的 我要", "yes"),
        # a sentence with the syllable of a one-syllable answer in it is no answer (heard on
        # a real recording: 广州市 has shi, as 是 has)
        ("广州市房地产中介协会分析", None),
        ("我的视频被限制了", None),
        # recorded words that answer nothing: 行 inside 银行 is no word of its own (there
        # it is even hang), and 识别 (shibie) is a third of its letters from 是的 (shide)
        ("银行", None),
        ("上行。", None),
        ("识别", None),
        ("嗯 是", "yes"),  # 是 written apart
    ],
)
def test_mandarin_yes_no(text: str, expected: str | None) -> None:
    assert value(ZH, "yes_no", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("幺三八零零幺三八零零零", "13800138000"),
        ("13800138000", "13800138000"),
        ("一三巴零零一三巴零零零", "13800138000"),  # 巴 sounds like 八 (ba)
        ("138 0013 8000。", "13800138000"),
        ("号码是巴三八零零一三八零零零", "83800138000"),  # 巴 after the carrier: a digit
        ("可以。一三八零零一三八零零零", "13800138000"),  # 以 of 可以 (yi) is no 一
        ("一三八零零一三八零零零", "13800138000"),
    ],
)
def test_mandarin_digits_by_sound(text: str, expected: str) -> None:
    assert value(ZH, "phone_number", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("可以", None),  # a word whose last character sounds like a digit (yi, yao, wu, ba)
        ("需要", None),
        ("下午", None),
        ("明吧。", None),
        ("巴", "8"),  # alone, it is the digit it sounds like
        ("衣。", "1"),
        ("十五", "5"),  # a digit written as one is read as one
    ],
)
def test_a_word_ending_in_a_digits_sound_is_no_digit(text: str, expected: str | None) -> None:
    """Recorded words heard at a one-digit ask: 16 of 277 were taken as a digit, 9 now (the
    rest are written as digits or as one character)."""
    grammar = ZH.get("digits", commands=False, digits=DigitRule(1, 1))
    meant = grammar.interpret(text)
    assert (meant.value if meant else None) == expected


def test_a_near_sound_is_a_word_of_about_the_answers_letters() -> None:
    twelve = Grammar("twelve", "zh-CN", {normalize(w): w for w in ("中国", "语言", "北京")})
    assert twelve.interpret("终古") is not None  # zhonggu for zhongguo
    assert twelve.interpret("许言").value == "语言"  # type: ignore[union-attr]
    assert ZH.get("content_type").interpret("下午") is None  # xiawu is no tiaowu (跳舞)


def test_mandarin_menu_by_sound() -> None:
    grammar = ZH.get("main_menu")
    phrase, meant = next((p, v) for p, v in grammar.phrases.items() if not v.startswith("@"))
    assert grammar.interpret("".join(phrase.split()) + "。").value == meant  # type: ignore[union-attr]


def test_whisper_repeats_collapse_outside_digits_and_mandarin() -> None:
    from ivr.speech.asr.whisper_text import collapse_repeats

    assert collapse_repeats("Repeat, repeat.") == "repeat"
    assert collapse_repeats("No, no, no") == "no"
    assert collapse_repeats("谢谢") == "谢谢"  # a Mandarin word, not a repeat


def test_a_piece_of_the_prompt_broken_off_mid_item_is_no_answer() -> None:
    from ivr.speech.asr.whisper_text import echoes_prompt

    prompt = "忘记密码，直播，查询工单，转人工。"  # noqa: RUF001 - Mandarin commas
    assert echoes_prompt("查询工", prompt)  # stops inside 查询工单
    assert not echoes_prompt("查询工单", prompt)  # a whole item is a real answer
    assert not echoes_prompt("forgot password", "forgot password, live streaming.")


def test_a_second_guess_must_be_the_answer_alone() -> None:
    from ivr.speech.understand import bare_answer

    yes_no = EN.get("yes_no")
    assert bare_answer(yes_no, "No.").value == "no"  # type: ignore[union-attr]
    assert bare_answer(yes_no, "no weather has been very cold this week") is None
    digits = EN.get("phone_number")
    said = "one three eight oh oh one three eight oh oh oh"
    assert bare_answer(digits, f"my number is {said}") is None
    assert bare_answer(digits, said).value == "13800138000"  # type: ignore[union-attr]


def test_the_beams_next_answer_is_taken_only_when_nearly_as_likely() -> None:
    from ivr.speech.asr.whisper import WhisperEngine
    from ivr.speech.asr.whisper_decode import Decoded
    from ivr.speech.asr.whisper_text import grammar_prompt
    from ivr.speech.grammar import DigitRule

    one = EN.get("digits", digits=DigitRule(1, 1))
    yes_no = EN.get("yes_no")

    def heard(d: Decoded, grammar=one) -> str | None:  # type: ignore[no-untyped-def]
        text, _ = WhisperEngine._understood(d, grammar_prompt(grammar, "en-US"), grammar)
        meant = grammar.interpret(text)
        return None if meant is None else meant.value

    assert heard(Decoded("Bye.", -0.22, 0.01, 1.0, (("Bye!", -0.79), ("Five.", -0.88)))) == "5"
    assert heard(Decoded("Bye.", -0.22, 0.01, 1.0, (("Five.", -1.2),))) is None  # far below
    assert heard(Decoded("Bye.", -0.22, 0.6, 1.0, (("Five.", -0.3),))) is None  # no voice, maybe
    assert heard(Decoded("Bye.", -0.9, 0.01, 1.0, (("Five.", -1.4),))) is None  # unlikely anyway
    # a person is never called for on a second guess
    assert heard(Decoded("Thank you.", -0.3, 0.1, 1.0, (("Agent.", -0.4),)), yes_no) is None
    assert heard(Decoded("Now.", -0.3, 0.1, 1.0, (("No.", -0.5),)), yes_no) == "no"


def test_a_mandarin_next_guess_is_another_reading_of_the_syllables_not_fewer() -> None:
    """Measured on an unrelated sentence at the phone-number ask: the best hypothesis wrote
    the sentence (请问商店星期天几点关门, heard as 新文方便…), a next one seven digits."""
    from ivr.speech.asr.whisper import WhisperEngine
    from ivr.speech.asr.whisper_decode import Decoded
    from ivr.speech.asr.whisper_text import grammar_prompt

    phone = ZH.get("phone_number")

    def heard(d: Decoded) -> str | None:
        text, _ = WhisperEngine._understood(d, grammar_prompt(phone, "zh-CN"), phone)
        meant = phone.interpret(text)
        return None if meant is None else meant.value

    sentence = "新文方便新提便提便关门"
    assert heard(Decoded(sentence, -0.9, 0.01, 1.0, (("七五五六七八九", -1.0),))) is None
    twelve, eleven = "幺三八零零幺三八零零零零", "幺三八零零幺三八零零零"
    assert phone.unusual(phone.interpret(twelve))
    assert heard(Decoded(twelve, -0.3, 0.05, 1.0, ((eleven, -0.35),))) == "13800138000"


def test_a_phone_number_with_a_digit_too_many_yields_to_the_usual_shape() -> None:
    """Over the phone Whisper's best guess at "one three eight, zero zero one three, eight
    zero zero zero" had a fifth zero, with the right number next in its beam (measured)."""
    from ivr.speech.asr.whisper import WhisperEngine
    from ivr.speech.asr.whisper_decode import Decoded
    from ivr.speech.asr.whisper_text import grammar_prompt

    phone = EN.get("phone_number")
    twelve = "One three eight, zero zero one three eight, zero zero zero zero."
    eleven = "One three eight, zero zero one three eight, zero zero zero."

    def heard(d: Decoded) -> str | None:
        text, _ = WhisperEngine._understood(d, grammar_prompt(phone, "en-US"), phone)
        meant = phone.interpret(text)
        return None if meant is None else meant.value

    assert phone.unusual(phone.interpret(twelve))
    assert not phone.unusual(phone.interpret(eleven))
    assert heard(Decoded(twelve, -0.31, 0.07, 1.8, ((eleven, -0.33),))) == "13800138000"
    # only a next guess nearly as likely, of the usual shape; else the best is kept
    assert heard(Decoded(twelve, -0.31, 0.07, 1.8, ((eleven, -1.2),))) == "138001380000"
    assert heard(Decoded(twelve, -0.31, 0.07, 1.8, ((twelve + " zero", -0.32),))) == (
        "138001380000"
    )
    # a usual number is never traded for another
    assert heard(Decoded(eleven, -0.31, 0.07, 1.8, ((twelve, -0.31),))) == "13800138000"
    # a North American number is usual too, with or without its leading 1
    for number in ("2125551234", "12125551234", "13912345678"):
        assert not phone.unusual(phone.interpret(" ".join(number)))
    for number in ("138001380000", "1234567", "23800138000"):
        assert phone.unusual(phone.interpret(" ".join(number))), number
    # a grammar that names no usual shapes takes every number it accepts
    ticket = EN.get("ticket_number")
    assert not ticket.unusual(ticket.interpret("1 2 3 4 5 6 7 8"))


def test_usual_shapes_must_be_regular_expressions(tmp_path: Path) -> None:
    from ivr.errors import ConfigError

    (tmp_path / "en-US").mkdir()
    for name in ("_commands.yaml", "_digits.yaml", "_numbers.yaml"):
        (tmp_path / "en-US" / name).write_text((REPO / "grammars/en-US" / name).read_text())
    (tmp_path / "en-US" / "bad.yaml").write_text("digits: {min: 7, max: 15, usual: ['1[3-9']}\n")
    (tmp_path / "en-US" / "odd.yaml").write_text("digits: {min: 7, max: 15, usual: 7}\n")
    book = GrammarBook(tmp_path, "en-US")
    with pytest.raises(ConfigError, match=r"bad\.yaml: digits: usual: '1\[3-9'"):
        book.get("bad")
    with pytest.raises(ConfigError, match=r"odd\.yaml: digits: usual: expected a list"):
        book.get("odd")


def test_several_digits_are_steered_by_an_example_and_copies_of_it_are_no_answer() -> None:
    from ivr.speech.asr.whisper_text import echoes_prompt, grammar_prompt, loops

    phone = EN.get("phone_number")
    prompt = grammar_prompt(phone, "en-US")
    assert prompt == phone.numbers.example and "oh" in prompt.lower()  # type: ignore[union-attr]
    assert echoes_prompt("One five nine, two oh four seven.", prompt, whole_items_too=True)
    assert not echoes_prompt("one three eight oh oh one three", prompt, whole_items_too=True)
    assert loops("No, no, no, no, no, no, no,")
    assert not loops("No, no, no.")


@pytest.mark.parametrize(
    ("grammar", "text", "expected"),
    [
        ("verification_code", "I did it to get it.", "resend"),  # Whisper, for "I didn't get it"
        ("main_menu", "My video was restrictive.", "content_review"),
        ("main_menu", "the weather has been very cold this week", None),
        ("main_menu", "could you tell me what time the shop closes on sunday", None),
        ("yes_no", "Thank you.", None),  # two letters from "no thank you", but two words
    ],
)
def test_long_english_phrases_by_spelling(grammar: str, text: str, expected: str | None) -> None:
    assert value(EN, grammar, text) == expected


def test_a_global_command_is_never_taken_by_spelling() -> None:
    from ivr.speech.understand import nearest_by_spelling

    phrases = {"i want to talk to a person": "@agent", "resend the code please": "resend"}
    assert nearest_by_spelling(["i", "want", "to", "talk", "to", "the", "person"], phrases) is None


def test_an_unsure_command_counts_only_where_it_was_not_prompted_and_keeps_the_caller() -> None:
    """Unsure Whisper copies words of its prompt: a command the prompt listed, or one that
    takes the caller away (a person, the menu), needs a sure decode; "slower" written
    unprompted (a Mandarin menu's prompt holds its answers alone) is the caller's."""
    from ivr.speech.asr.whisper_text import COMMAND_CONFIDENCE, command_in_doubt, grammar_prompt

    unsure, sure = COMMAND_CONFIDENCE - 0.01, COMMAND_CONFIDENCE
    menu_zh = ZH.get("main_menu")
    prompt_zh = grammar_prompt(menu_zh, "zh-CN")
    assert prompt_zh is not None and "慢一点" not in prompt_zh
    assert not command_in_doubt(menu_zh.interpret("慢点").value, unsure, menu_zh, prompt_zh)
    assert not command_in_doubt("@normal_speed", unsure, menu_zh, prompt_zh)
    assert command_in_doubt("@agent", unsure, menu_zh, prompt_zh)  # a person: always sure
    assert command_in_doubt("@main_menu", unsure, menu_zh, prompt_zh)
    assert not command_in_doubt("@agent", sure, menu_zh, prompt_zh)
    menu_en = EN.get("main_menu")
    prompt_en = grammar_prompt(menu_en, "en-US")
    assert prompt_en is not None and "slower" in prompt_en  # English prompts list commands
    assert command_in_doubt("@slower", unsure, menu_en, prompt_en)
    assert not command_in_doubt("@slower", sure, menu_en, prompt_en)
    assert not command_in_doubt("account_recovery", unsure, menu_en, prompt_en)


def test_a_mandarin_digit_ask_is_prompted_with_digits_written_together() -> None:
    """Shown the digits as a comma list, Whisper base wrote a lone recorded digit as that
    list again ("三" as 三 and 三) or not at all; as a number is written, it wrote the digit."""
    from ivr.speech.asr.whisper_text import grammar_prompt

    one = grammar_prompt(ZH.get("digits", digits=DigitRule(1, 1)), "zh-CN")
    assert one == "零一二三四五六七八九。"
    yes_no = grammar_prompt(ZH.get("yes_no"), "zh-CN")  # words stay a list (a space: worse)
    assert yes_no is not None and yes_no.startswith("是，是的，")  # noqa: RUF001


def test_a_mandarin_answer_must_be_most_of_what_was_said() -> None:
    assert value(ZH, "yes_no", "明天我要去医院看病") is None  # 要 is an answer alone
    assert value(ZH, "callback_window", "明天 我要去医院看病") is None
    assert value(ZH, "main_menu", "我想问一下我的工单状态") == "ticket_status"
    assert value(ZH, "yes_no", "嗯 是的") == "yes"


# --- a Mandarin phrase chosen by its fit (ivr.speech.asr.choices) -------------------------------
TWELVE = Grammar(
    "twelve",
    "zh-CN",
    {normalize(w): w for w in ("北京", "背景", "上海", "语言", "语音")},
    inventions=ZH.get("yes_no").inventions,
)


def weighed(**fits: float) -> Weighed:
    """Every phrase of TWELVE weighed at -8 (a poor fit), those named at their fit."""
    return Weighed(tuple((p, fits.get("".join(p.split()), -8.0)) for p in TWELVE.phrases))


VOICE = 0.8  # seconds: a two-syllable word said at a usual pace


def test_an_answer_whose_syllables_another_has_is_chosen_by_fit() -> None:
    fits = {"背景": -1.0, "北京": -2.0}
    assert choose(weighed(**fits), TWELVE, "北京", VOICE) == normalize("背景")
    assert choose(weighed(**fits), TWELVE, "上海", VOICE) is None  # no other answer sounds so
    assert choose(weighed(**{"北京": -1.0}), TWELVE, "北京", VOICE) == normalize("北京")


def test_where_the_free_text_has_no_answer_the_best_fit_is_taken_only_when_it_can_be() -> None:
    assert choose(weighed(语音=-2.0), TWELVE, "", VOICE) == normalize("语音")
    no_answer = "肯置"  # no answer's sound
    assert choose(weighed(语音=-2.0), TWELVE, no_answer, VOICE) == normalize("语音")
    assert choose(weighed(语音=-3.0), TWELVE, "", VOICE) is None  # fits too poorly
    assert choose(weighed(语音=-2.0), TWELVE, "", 3.0) is None  # a voice too long for it
    assert choose(weighed(语音=-2.0), TWELVE, "今天今天好", VOICE) is None  # more said than it
    assert choose(weighed(语音=-2.0), TWELVE, "嗯", VOICE) is None  # a filler
    assert choose(weighed(语音=-2.0), TWELVE, "you", VOICE) is None  # another language


def test_an_answer_written_for_a_voice_far_longer_than_it_is_no_answer() -> None:
    yes_no, menu = ZH.get("yes_no"), ZH.get("main_menu")
    assert not outlasts(yes_no, "好", 1.9)  # a slow 好 in noise
    assert outlasts(yes_no, "行 好", 4.0)  # two words of 这个节目真好看
    assert not outlasts(menu, "我的视频被限制了", 4.3)  # eight syllables, said slowly
    assert outlasts(menu, "直播 母亲 好看", 4.0)  # a two-syllable answer in a sentence
    assert not outlasts(menu, "关机密码", 2.8)  # 密码: the answer's own syllables count


@pytest.mark.parametrize(
    ("answer", "unprompted", "dropped"),
    [
        # recorded words that answer nothing, written as a yes by the prompted decode
        ("行。", "再見", True),  # 北京
        ("。好。", "手指", True),  # 数字
        ("。对。", "背一斤", True),
        ("。是。", "時間", True),
        # the same answer, heard without the prompt as the same value or near its phrases
        ("。是。", "是", False),  # one syllable: nothing longer was said
        ("好。", "好的", False),  # an answer of the same value
        ("。对。", "對的", False),  # 对的, written in traditional characters
        ("行。", "行吗", False),  # xingma: 2 of its 6 letters from xing (行)
        ("不。", "不要", False),
        ("。是。", "", False),  # nothing written without the prompt
        ("。是。", None, False),  # not decoded again (a longer answer, or no Mandarin ask)
        # a longer answer is not this check's to drop
        ("可以", "靠你", False),
    ],
)
def test_a_one_syllable_answer_heard_as_a_longer_word_without_the_prompt(
    answer: str, unprompted: str | None, dropped: bool
) -> None:
    assert said_more(ZH.get("yes_no"), answer, unprompted) is dropped


def test_a_command_is_never_chosen_by_fit() -> None:
    menu = ZH.get("main_menu")
    agent = next(p for p, v in menu.phrases.items() if v == "@agent")
    fits = Weighed(tuple((p, -1.0 if p == agent else -3.0) for p in menu.phrases))
    assert choose(fits, menu, "", VOICE) is None


def test_weighing_is_needed_unless_the_free_text_is_one_phrase_as_written() -> None:
    phrases = tuple(TWELVE.phrases)
    assert not needs_weighing("上海。", phrases)
    assert needs_weighing("北京", phrases)  # 背景 has its syllables
    assert needs_weighing("商海", phrases)
    assert needs_weighing("", phrases)


def test_only_mandarin_asks_for_a_few_phrases_are_weighed() -> None:
    yes_no = ZH.get("yes_no")
    weighed = choices_for(yes_no, "zh-CN")
    answers = [p for p, v in yes_no.phrases.items() if not v.startswith("@")]
    assert weighed[: len(answers)] == tuple(answers)
    assert {yes_no.phrases[p] for p in weighed[len(answers) :]} == {
        v for v in yes_no.phrases.values() if v.startswith("@")
    }  # one phrase for each command
    assert choices_for(EN.get("yes_no"), "en-US") == ()
    assert choices_for(ZH.get("phone_number"), "zh-CN") == ()
    assert choices_for(None, "zh-CN") == ()
