"""Real engines on synthesised speech: PocketSphinx (en-US), Vosk (Korean model), pyttsx3."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.qa.synth import caller_speech
from ivr.speech.audio import telephone
from ivr.speech.grammar import DigitRule
from tests.helpers import recognise

YES_NO = ["yes", "no", "yeah", "nope", "correct", "that's right", "wrong"]
MENU = {
    "forgot password": "account_recovery",
    "I forgot my password": "account_recovery",
    "account recovery": "account_recovery",
    "live streaming": "live_streaming",
    "how do I go live": "live_streaming",
    "my video was restricted": "content_review",
    "low views": "content_review",
    "ticket status": "ticket_status",
    "check my ticket": "ticket_status",
    "feedback": "feedback",
    "I have a suggestion": "feedback",
}
UNRELATED = [
    "how are you doing",
    "I would like to buy a new car",
    "my dog likes to play in the garden",
    "what time does the store close",
    "can you tell me the news",
    "it is raining outside again",
    "hello is anybody there",
    "I need to pay my bill",
    "the weather is nice today",
    "turn off the kitchen lights",
]


def _value(sphinx, grammar, text, rate=16000, phone=False):  # type: ignore[no-untyped-def]
    audio = caller_speech(text)
    if phone:
        audio = telephone(audio)
    hyp = recognise(sphinx, grammar, audio, rate)
    interp = grammar.interpret(hyp.text)
    return (interp.value if interp and hyp.confidence >= 0.45 else None), hyp


def test_yes_no(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    g = grammars.get("yes_no")
    results = {t: _value(sphinx, g, t)[0] for t in YES_NO}
    expected = {t: ("no" if t in ("no", "nope", "wrong") else "yes") for t in YES_NO}
    assert sum(results[t] == expected[t] for t in YES_NO) >= 6, results


def test_main_menu_phrases(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    g = grammars.get("main_menu")
    results = {t: _value(sphinx, g, t)[0] for t in MENU}
    assert sum(results[t] == v for t, v in MENU.items()) >= len(MENU) - 1, results


def test_eleven_digit_number(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    g = grammars.get("phone_number")
    value, _ = _value(sphinx, g, "one three eight, zero zero one three, eight zero zero zero")
    assert value == "13800138000"


def test_six_digit_code(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    g = grammars.get("verification_code")
    assert _value(sphinx, g, "four eight two, nine one three")[0] == "482913"


@pytest.mark.parametrize("grammar", ["main_menu", "yes_no"])
def test_unrelated_speech_is_rejected(sphinx, grammars, grammar) -> None:  # type: ignore[no-untyped-def]
    g = grammars.get(grammar)
    accepted = {t: v for t in UNRELATED if (v := _value(sphinx, g, t)[0]) is not None}
    assert len(accepted) <= 1, f"accepted out-of-grammar speech: {accepted}"


@pytest.fixture(scope="module")
def korean():  # type: ignore[no-untyped-def]
    from ivr.speech import models
    from ivr.speech.asr.vosk import VoskEngine
    from ivr.speech.grammar import GrammarBook

    engine = VoskEngine(models.bundled_model_paths()["ko-KR"], "ko-KR")
    book = GrammarBook(Path(__file__).resolve().parents[1] / "data" / "grammars", "ko-KR")
    return engine, book.get("yes_no")


def test_vosk_korean_yes_no(korean) -> None:  # type: ignore[no-untyped-def]
    from ivr.speech.asr.vosk import VoskEngine

    engine, grammar = korean
    for text, value in (("네", "yes"), ("아니요", "no")):
        hyp = recognise(engine, grammar, caller_speech(text, locale="ko-KR"))
        interp = grammar.interpret(hyp.text)
        assert interp is not None and interp.value == value and hyp.confidence >= 0.45, hyp
    assert VoskEngine(engine.model_path, "ko-KR").model is engine.model  # one model per process


def test_vosk_korean_over_the_phone(korean) -> None:  # type: ignore[no-untyped-def]
    engine, grammar = korean
    for text, value in (("네", "yes"), ("아니요", "no")):
        hyp = recognise(engine, grammar, telephone(caller_speech(text, locale="ko-KR")), 8000)
        interp = grammar.interpret(hyp.text)
        assert interp is not None and interp.value == value and hyp.confidence >= 0.45, hyp


def test_vosk_rejects_unrelated_korean(korean) -> None:  # type: ignore[no-untyped-def]
    engine, grammar = korean
    unrelated = [
        "오늘 날씨가 정말 좋네요",
        "배가 고파요",
        "지하철역이 어디에 있어요",
        "음악을 듣고 싶어요",
        "친구와 같이 밥을 먹었어요",
    ]
    accepted = []
    for text in unrelated:
        hyp = recognise(engine, grammar, caller_speech(text, locale="ko-KR"))
        if grammar.interpret(hyp.text) is not None and hyp.confidence >= 0.45:
            accepted.append((text, hyp.text))
    assert len(accepted) <= 1, accepted


def test_pyttsx3_rate_changes_duration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ivr.speech.tts import Synthesizer

    synth = Synthesizer(tmp_path)
    text = "Please say the phone number linked to your account."
    slow = synth.segment(text, voice="en-us", rate_wpm=110, sample_rate=16000)
    fast = synth.segment(text, voice="en-us", rate_wpm=180, sample_rate=16000)
    assert len(slow) > 1.3 * len(fast)
    assert len(fast) > 16000  # real audio, not an empty file


def test_vosk_free_form_dictation(korean) -> None:  # type: ignore[no-untyped-def]
    """Feedback uses the model with no grammar: words for speech, nothing for silence.

    (The Korean model transcribes espeak-ng's Korean poorly, so only the plumbing is checked:
    free dictation runs through the same adapter and is not bound to a grammar.)
    """
    import numpy as np

    from ivr.speech.audio import Audio

    engine, grammar = korean
    hyp = recognise(engine, None, caller_speech("오늘 날씨가 정말 좋네요", locale="ko-KR"))
    assert len(hyp.text.split()) >= 3, hyp
    assert grammar.interpret(hyp.text) is None  # not forced onto the yes/no phrases
    quiet = recognise(engine, None, Audio(np.zeros(16000, dtype=np.int16), 16000))
    assert quiet.text == ""


def test_sphinx_free_form_dictation(sphinx) -> None:  # type: ignore[no-untyped-def]
    """The bundled English language model transcribes free speech (feedback) without a grammar."""
    hyp = recognise(sphinx, None, caller_speech("thank you so much it is wonderful"))
    assert {"thank", "you", "much"} <= set(hyp.text.split()), hyp


def test_an_installed_model_serves_its_locale(tmp_path: Path) -> None:
    """`ivr models install … --locale zh-CN` makes Vosk the recogniser for that locale."""
    from ivr.speech import models
    from ivr.speech.asr.vosk import VoskEngine
    from ivr.speech.engines import Engines

    engines = Engines(tmp_path / "models", bundled=False)
    assert engines.for_locale("zh-CN") is None  # keys only until a model is installed
    source = models.bundled_model_paths()["ko-KR"]
    models.install_model(str(source), tmp_path / "models", locale="zh-CN", progress=False)
    fresh = Engines(tmp_path / "models", bundled=False)
    assert isinstance(fresh.for_locale("zh-CN"), VoskEngine)
    assert fresh.describe("zh-CN").startswith("vosk")


def _anonymous_mb() -> float:
    """Memory of this process that no file backs (what each decoder allocates)."""
    text = Path("/proc/self/smaps_rollup").read_text()
    return int(text.split("Anonymous:")[1].split()[0]) / 1024


def test_concurrent_utterances_do_not_each_hold_the_dictionary(grammars) -> None:  # type: ignore[no-untyped-def]
    """Each utterance heard at the same time holds its own decoders; they know only the words
    of the grammars they have met (the whole dictionary would cost about 20 MB each)."""
    from ivr.speech.asr.sphinx import SphinxEngine
    from ivr.speech.audio import split_frames

    engine = SphinxEngine(decoders=10)
    speech = caller_speech("ticket status").to_rate(16000).samples
    names = ["main_menu", "yes_no", "phone_number", "ticket_number", "step_done"]
    before = _anonymous_mb()
    heard = []
    for i in range(10):  # ten callers speaking at once: ten decoder pairs
        rec = engine.recognizer(grammars.get(names[i % len(names)]), 16000, {})
        for frame in split_frames(speech, 16000):
            rec.accept(frame)
        heard.append(rec)
    grown = _anonymous_mb() - before
    assert grown < 10 * 20, f"{grown:.0f} MB for ten concurrent utterances"  # measured ~85
    pair = heard[0]._pair  # type: ignore[attr-defined]
    assert pair.grammar.lookup_word("ticket") is not None  # the menu's words, learnt
    assert pair.grammar.lookup_word("zebra") is None  # not the whole dictionary
    assert engine.unknown_words({"ticket", "zebra", "qwxz"}) == ["qwxz"]
    results = [rec.finish() for rec in heard]
    assert grammars.get("main_menu").interpret(results[0].text).value == "ticket_status"


def test_callers_beyond_the_decoders_are_heard_when_one_comes_free(grammars) -> None:  # type: ignore[no-untyped-def]
    """A process makes at most ``decoders`` pairs, however many callers speak at once: a
    caller who starts while all are busy keeps their audio and is heard from its start by
    the first pair to come free (mid-utterance, or at its end)."""
    from ivr.speech.asr.sphinx import SphinxEngine
    from ivr.speech.audio import split_frames

    engine = SphinxEngine(decoders=2)
    menu = grammars.get("main_menu")
    said = {"ticket status": "ticket_status", "account recovery": "account_recovery"}
    frames = {
        text: split_frames(caller_speech(text).to_rate(16000).samples, 16000) for text in said
    }
    texts = ["ticket status", "account recovery", "account recovery", "ticket status"]
    callers = [engine.recognizer(menu, 16000, {}) for _ in texts]
    half = {text: len(f) // 2 for text, f in frames.items()}
    for rec, text in zip(callers, texts, strict=True):  # everyone's first half, at once
        for frame in frames[text][: half[text]]:
            rec.accept(frame)
    assert engine.pairs() == 2
    assert callers[2].partial() == "" and callers[3].partial() == ""  # waiting for a pair
    for frame in frames[texts[0]][half[texts[0]] :]:
        callers[0].accept(frame)
    first = callers[0].finish()  # its pair comes free: the third caller's audio goes to it
    for rec, text in zip(callers[1:], texts[1:], strict=True):
        for frame in frames[text][half[text] :]:
            rec.accept(frame)
    assert callers[2].partial() != ""  # heard from the start, mid-utterance
    results = [first] + [rec.finish() for rec in callers[1:]]  # the fourth waits at its end
    assert [menu.interpret(r.text).value for r in results] == [said[t] for t in texts]
    assert engine.pairs() == 2


def test_a_digit_ask_reuses_an_idle_phrase_decoder_slot(grammars) -> None:  # type: ignore[no-untyped-def]
    """Digit strings of open length decode with their own word penalty (a pair of their own):
    at the limit, an idle pair of the other kind makes room rather than the caller waiting."""
    from ivr.speech.asr.sphinx import SphinxEngine
    from ivr.speech.audio import split_frames

    engine = SphinxEngine(decoders=1)
    digits = grammars.get("digits", digits=DigitRule(1, 12))
    rec = engine.recognizer(digits, 16000, {})
    assert rec._pair is not None  # type: ignore[attr-defined]
    for frame in split_frames(caller_speech("four two").to_rate(16000).samples, 16000):
        rec.accept(frame)
    assert digits.interpret(rec.finish().text).digits == "42"
    assert engine.pairs() == 1


def test_grammar_decoders_setting_must_be_positive(tmp_path: Path) -> None:
    from ivr.config import load_settings
    from ivr.errors import ConfigError

    config = tmp_path / "ivr.toml"
    config.write_text("[asr]\ngrammar_decoders = 0\n")
    with pytest.raises(ConfigError, match="grammar_decoders"):
        load_settings(config, home=tmp_path)


@pytest.mark.parametrize("value", ["0.5", "45", "-1", '"ten"'])
def test_quick_opinion_window_must_be_off_or_fit_the_model(tmp_path: Path, value: str) -> None:
    from ivr.config import load_settings
    from ivr.errors import ConfigError

    config = tmp_path / "ivr.toml"
    config.write_text(f"[asr]\nquick_opinion_sec = {value}\n")
    with pytest.raises(ConfigError, match="quick_opinion_sec"):
        load_settings(config, home=tmp_path)
    config.write_text("[asr]\nquick_opinion_sec = 0\n")
    assert load_settings(config, home=tmp_path).asr.quick_opinion_sec == 0
