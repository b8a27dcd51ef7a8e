"""Mandarin by speech: Whisper base hears zh-CN callers at every kind of ask.

Real recordings (../shared/speech/zh-CN, see its INDEX.tsv and licences) through the
telephone path, the synthetic Mandarin caller (espeak-ng) in the three caller
conditions, and the IVR's own Mandarin prompts heard back as Mandarin (never as English
letters and numbers). Floors are the benchmark's measurements less a margin (README).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from ivr.config import Settings, Voice
from ivr.dialog.prompts import PromptBook
from ivr.qa.conditions import Condition, degrade, not_speech, read_out
from ivr.qa.synth import condition_speech
from ivr.speech.audio import Audio, read_audio, split_frames, telephone
from ivr.speech.grammar import COMMAND_PREFIX, Grammar, GrammarBook, normalize
from ivr.speech.tts import Synthesizer
from ivr.speech.understand import is_hanzi, pinyin
from ivr.speech.voices import voice_for
from tests.conftest import REPO, SHARED_SPEECH
from tests.integration.test_whisper import hear, taken_as_answers

ZH = GrammarBook(REPO / "grammars", "zh-CN")
INDEX = SHARED_SPEECH / "zh-CN" / "INDEX.tsv"


def _rows() -> list[dict[str, str]]:
    with INDEX.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _accuracy(engine, grammar: Grammar, items: list[tuple[str, str]]) -> float:  # type: ignore[no-untyped-def]
    """The share of recordings heard as their value ("nothing": heard as no answer)."""

    def one(item: tuple[str, str]) -> bool:
        audio = telephone(read_audio(SHARED_SPEECH / "zh-CN" / item[0]))
        value = hear(engine, grammar, audio)[0]
        return value is None if item[1] == "nothing" else value == item[1]

    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(one, items))
    return sum(results) / len(results)


def test_yes_no_words_over_the_phone(engines) -> None:  # type: ignore[no-untyped-def]
    grammar = ZH.get("yes_no")
    items = []
    for r in _rows():
        meant = grammar.interpret(r["text"]) if r["kind"] == "yes_no" else None
        if meant is not None:
            items.append((r["file"], meant.value))
    assert len(items) >= 15
    assert _accuracy(engines.require("zh-CN"), grammar, items) >= 0.8  # bench: 1.00 (18 recordings)


def test_twelve_words_from_seventeen_speakers_over_the_phone(engines) -> None:  # type: ignore[no-untyped-def]
    rows = [r for r in _rows() if r["kind"] == "command"]
    words = [w for w, _ in Counter(r["text"] for r in rows).most_common(12)]
    yes_no = ZH.get("yes_no")
    grammar = Grammar(
        "twelve_words", "zh-CN", {normalize(w): w for w in words}, numbers=yes_no.numbers
    )
    items = [(r["file"], r["text"]) for r in rows if r["text"] in words][::2]
    assert len(items) >= 90
    assert _accuracy(engines.require("zh-CN"), grammar, items) >= 0.75  # bench, all 204: 0.83


def _said_digit_by_digit(number: str, pause_s: float) -> Audio:
    """The recorded digits (one speaker) read out one by one, through the phone path."""
    files = {r["text"]: r["file"] for r in _rows() if r["kind"] == "digit"}
    digits = [files["零一二三四五六七八九"[int(d)]] for d in number]
    words = [read_audio(SHARED_SPEECH / "zh-CN" / f) for f in digits]
    return telephone(read_out(words, pause_s))


def test_numbers_read_out_digit_by_digit_are_heard_whole(engines) -> None:  # type: ignore[no-untyped-def]
    """Loud and slow over the phone: Silero found only part of such a voice, and the cut
    to the voice left Whisper the first digits. Of these eight, 2 came back whole then and
    7 now (of 12 random codes and 12 phone numbers: 4 and 0 then, 12 and 9 now)."""
    engine = engines.require("zh-CN")
    heard = []
    for ask, numbers in (
        ("verification_code", ("482913", "730165", "159083", "526018")),
        ("phone_number", ("13800138000", "15245957117", "18246281948", "13199351819")),
    ):
        grammar = ZH.get(ask)
        for n, number in enumerate(numbers):
            audio = _said_digit_by_digit(number, (0.12, 0.3)[n % 2])
            heard.append((number, hear(engine, grammar, audio)))
    whole = [number for number, (value, _) in heard if value == number]
    assert len(whole) >= 6, heard


def test_the_synthetic_mandarin_caller_is_understood(engines) -> None:  # type: ignore[no-untyped-def]
    """espeak-ng's Mandarin is hard to follow (a listener test, below): most answers are still
    heard, in every condition, and an answer not heard is asked again rather than guessed."""
    engine = engines.require("zh-CN")
    menu = ZH.get("main_menu")
    recovery = next(p for p, v in menu.phrases.items() if v == "account_recovery")
    cases = [
        ("是的", "yes_no", "yes"),
        ("不是", "yes_no", "no"),
        ("对", "yes_no", "yes"),
        ("".join(recovery.split()), "main_menu", "account_recovery"),
        ("转人工", "main_menu", "@agent"),
    ]
    jobs = [(c, *case) for c in Condition for case in cases]

    def one(job: tuple[Condition, str, str, str]) -> tuple[str, str, str | None, str, str]:
        condition, words, ask, expected = job
        audio = condition_speech(words, locale="zh-CN", condition=condition.value)
        value, text = hear(engine, ZH.get(ask), audio)
        return condition.value, words, value, expected, text

    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(one, jobs))
    right = [r for r in results if r[2] == r[3]]
    wrong = [r for r in results if r[2] is not None and r[2] != r[3]]
    assert len(right) >= 0.6 * len(results), results
    assert len(wrong) <= 1, wrong


# --- nothing becomes an answer ----------------------------------------------------------------
UNRELATED = ["明天我要去医院看病", "今天天气很好", "请问商店星期天几点关门", "这个节目真好看"]
ENGLISH = "my grandson bought me a new television for my birthday"
NEWS = "aishell_wenet/aishell_BAC009S0724W0121.wav"  # a real speaker reading a news sentence
ASKS = ("yes_no", "main_menu", "content_type", "phone_number")


# of the 24 (sentence, ask) pairs a condition has, measured taken as an answer: none on one
# machine; 1, 1 and 2 (clean, phone, noisy) on another, whose CPU computes Whisper's scores
# with other kernels (README, Known problems)
SENTENCES_TAKEN_AT_MOST = 3


@pytest.mark.parametrize("condition", [c.value for c in Condition])
def test_nothing_that_is_not_an_answer_becomes_one(engines, condition: str) -> None:  # type: ignore[no-untyped-def]
    """Silence, line noise, music and keypad tones never answer an ask, and nothing that is no
    request for a person calls one.

    Unrelated sentences (Mandarin, English, a recorded news sentence) seldom answer: Whisper
    base writes a prompt item or two for a sentence it cannot follow (行 好 for 这个节目真好看
    in noise), a next guess of one item for a sentence it wrote, and words for keypad tones.
    Most of it is dropped; what is left is a near tie between the sentence and the prompt's
    items, which one CPU's arithmetic decides one way and another's the other.
    """
    engine = engines.require("zh-CN")
    heard_in = Condition(condition)
    sounds = {k: degrade(v, heard_in, key=k) for k, v in not_speech(16000).items()}
    sentences = {
        words: condition_speech(words, locale="zh-CN", condition=condition) for words in UNRELATED
    }
    sentences["English"] = condition_speech(ENGLISH, locale="en-US", condition=condition)
    news = read_audio(SHARED_SPEECH / "zh-CN" / NEWS)
    sentences["news"] = degrade(news, heard_in, key="news")
    asks = {ask: ZH.get(ask) for ask in ASKS}
    accepted = taken_as_answers(engine, {**sounds, **sentences}, asks)
    assert not [a for a in accepted if a[0] in sounds], f"sounds taken ({condition}): {accepted}"
    commands = [a for a in accepted if a[2] is not None and a[2].startswith(COMMAND_PREFIX)]
    assert not commands, f"commands taken ({condition}): {commands}"
    assert len(accepted) <= SENTENCES_TAKEN_AT_MOST, (
        f"sentences taken as answers ({condition}, of {len(sentences) * len(asks)}): {accepted}"
    )


def test_recorded_words_that_answer_nothing_are_seldom_taken_as_answers(engines) -> None:  # type: ignore[no-untyped-def]
    """Whisper base writes a short unknown word as the nearest item of its prompt (北京 as
    舞蹈 at the content-type ask); measured 6 of 52 recorded words taken as an answer there,
    30 before an answer chosen by its fit needed -2.5 (README, words that answer nothing)."""
    grammar = ZH.get("content_type")
    rows = [r for r in _rows() if r["kind"] == "command"]
    once = [w for w, n in Counter(r["text"] for r in rows).items() if n == 1]
    items = [
        (r["file"], "nothing")
        for r in rows
        if r["text"] in once and grammar.interpret(r["text"]) is None
    ]
    assert len(items) >= 50
    taken = round((1 - _accuracy(engines.require("zh-CN"), grammar, items)) * len(items))
    assert taken <= 10, f"{taken} of {len(items)} taken as answers"


# recorded words Whisper base writes as a one-syllable yes when shown the yes/no answers
# (时间 as 是, 维修 as 好), and as themselves without the prompt (時間, 維修)
BENT_INTO_YES = ("audio_cmn_yuetan/yuetan_cmd_40.wav", "audio_cmn_yuetan/yuetan_cmd_32.wav")


def test_a_longer_word_written_as_a_one_syllable_yes_is_no_answer(engines) -> None:  # type: ignore[no-untyped-def]
    """A one-syllable answer is heard once more without the prompt, on the same encoding; a
    longer word that answers nothing (choices.said_more) is asked again, not taken as yes."""
    engine = engines.require("zh-CN")
    grammar = ZH.get("yes_no")
    for name in BENT_INTO_YES:
        value, text = hear(engine, grammar, telephone(read_audio(SHARED_SPEECH / "zh-CN" / name)))
        assert value is None, (name, text)


def test_a_hypothesis_that_ends_inside_a_character_leaves_no_broken_mark(settings) -> None:  # type: ignore[no-untyped-def]
    """Whisper base's own tokenizer: 询 is two byte tokens, and a hypothesis cut between them
    (as one came back in noise, "询查询\ufffd") is written without the broken character."""
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    from ivr.speech.asr.whisper_decode import written
    from ivr.speech.whisper_models import locate

    found = locate(settings.models_dir, "whisper-base")
    assert found.path is not None, found.note
    hf = tokenizers.Tokenizer.from_file(str(found.path / "tokenizer.json"))
    tokenizer = Tokenizer(hf, True, task="transcribe", language="zh")
    ids = tokenizer.encode("询查询")
    cut = ids[:-1]  # the last character's first byte only
    assert "\ufffd" in tokenizer.decode(cut)
    assert written(tokenizer, cut) == "询查"
    assert written(tokenizer, ids) == "询查询"


# A voice that reads pinyin as English speaks each syllable's tone as a number ("ling two, yi
# one"); a listener writes those down as English number words or digits.
TONE_NUMBERS = re.compile(r"(?<![a-z])(one|two|three|four|five)(?![a-z])|[0-9]", re.IGNORECASE)


def _sounds(text: str) -> list[str]:
    """The toneless syllables of the Chinese characters in ``text`` (還 and 还 alike)."""
    return [pinyin(t) for t in normalize(text).split() if is_hanzi(t)]


def _in_order(said: list[str], heard: list[str]) -> int:
    """How many of ``said``'s syllables ``heard`` has, in order (longest common subsequence)."""
    prev = [0] * (len(heard) + 1)
    for s in said:
        cur = [0]
        for j, h in enumerate(heard, 1):
            cur.append(prev[j - 1] + 1 if s == h else max(prev[j], cur[-1]))
        prev = cur
    return prev[-1]


def test_mandarin_prompts_are_heard_as_mandarin(engines, settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A listener (Whisper base) hears the IVR's Mandarin prompts as Chinese, without the
    English tone numbers ("ling two, yi one") that a "latin as English" voice speaks.

    The listener writes espeak-ng's Mandarin loosely (感谢您致电 as 看見您知見) and not the
    same on every machine (a stray English phrase after a prompt on a loaded one), so the
    prompts are judged together by the syllables heard in order: about 0.55 of them with
    the Mandarin voice, none with the "latin as English" one (its prompts heard as looping
    digits, which the recogniser drops, or as bare tone numbers)."""
    whisper = engines.require("zh-CN")
    book = PromptBook(REPO / "prompts", "zh-CN")
    synth = Synthesizer(tmp_path / "cache")
    params = {"brand": settings.brand_for("zh-CN")}
    heard, said, found = {}, 0, 0
    for pid in ("goodbye", "anything_else", "slower_ack", "apology"):
        speech = book.speech(pid, params=params, voice=Voice())
        audio = synth.render(speech, voice=voice_for(Voice(), "zh-CN"), sample_rate=16000)
        rec = whisper.recognizer(None, 16000, {})
        for frame in split_frames(audio.samples, 16000):
            rec.accept(frame)
        heard[pid] = rec.finish().text
        sounds = _sounds(book.text(pid).format(**params))
        said += len(sounds)
        found += _in_order(sounds, _sounds(heard[pid]))
    assert found >= 0.3 * said, (f"{found} of {said} syllables heard", heard)
    for pid, text in heard.items():
        # A voice reading pinyin as English speaks a tone number after every syllable (dozens
        # a prompt); the listener's own slip is one (on a loaded CI machine it once wrote
        # "只剖4天" for 直播, no digit in the prompt).
        assert len(list(TONE_NUMBERS.finditer(text))) <= 1, (pid, text)
