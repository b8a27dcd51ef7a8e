"""The decoder's answer and Whisper's second opinion: the quick one (``SecondOpinion._quick``),
and where the decoder's unsure answer stands against a misspelling.

Logic only, with stand-ins for the two engines; the real engines on real recordings, and
every sound that must not become an answer, are in tests/integration/test_whisper.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ivr.speech.asr import routed
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.asr.routed import Route, RoutedEngine
from ivr.speech.asr.whisper import WhisperEngine
from ivr.speech.asr.whisper_decode import WINDOW_SEC
from ivr.speech.grammar import GrammarBook
from tests.conftest import REPO

RATE = 8000
EN = GrammarBook(REPO / "grammars", "en-US")


class Decoder(Engine, Recognizer):
    """A grammar decoder that hears ``text`` with ``confidence``, whatever is said; asked for
    the words alone (``unscored``), it skips its score, as PocketSphinx does."""

    name = "decoder"
    locale = "en-US"

    def __init__(self, text: str, confidence: float) -> None:
        self.text, self.confidence = text, confidence
        self.asked: list[str] = []

    def recognizer(self, grammar: Any, sample_rate: int, context: Any = None) -> Recognizer:
        self.asked.append("scored")
        return self

    def unscored(self, grammar: Any, sample_rate: int, context: Any = None) -> Recognizer:
        self.asked.append("unscored")
        return self

    def unknown_words(self, words: set[str]) -> list[str]:
        return []

    def accept(self, frame: np.ndarray) -> None:
        pass

    def partial(self) -> str:
        return ""

    def finish(self) -> Hypothesis:
        if self.asked[-1] == "unscored":
            return Hypothesis(self.text, 0.0, self.name, scored=False)
        return Hypothesis(self.text, self.confidence, self.name)


class Whisper(WhisperEngine):
    """Writes ``quick`` over a short window and ``whole`` over the whole one; counts both."""

    def __init__(self, quick: str, whole: str) -> None:
        self.name = "whisper"
        self.heard = {"quick": quick, "whole": whole}
        self.windows: list[float] = []

    def transcribe(
        self, audio: np.ndarray, rate: int, grammar: Any, *, window_sec: float | None = None
    ) -> Hypothesis:
        window_sec = WINDOW_SEC if window_sec is None else window_sec  # the ask's: yes/no, menu
        self.windows.append(window_sec)
        text = self.heard["whole" if window_sec == WINDOW_SEC else "quick"]
        return Hypothesis(text, 0.8 if text else 0.0, self.name)


@pytest.fixture(autouse=True)
def voiced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routed, "has_voice", lambda *_: True)  # the stand-ins hear no audio


def routed_engine(
    decoder: Decoder, whisper: Whisper, *, window: float = 10.0, phrases: Route = Route.BOTH
) -> RoutedEngine:
    return RoutedEngine(
        "en-US",
        grammar_engine=decoder,
        whisper=whisper,
        digits=Route.WHISPER,
        phrases=phrases,
        dictation=Route.WHISPER,
        accept=0.6,
        reject=0.45,
        quick_window_sec=window,
    )


def heard(
    decoder: tuple[str, float],
    whisper: Whisper,
    ask: str = "yes_no",
    *,
    seconds: float = 1.0,
    window: float = 10.0,
) -> tuple[str, float]:
    engine = routed_engine(Decoder(*decoder), whisper, window=window)
    rec = engine.recognizer(EN.get(ask), RATE, {})
    rec.accept(np.zeros(int(seconds * RATE), np.int16))
    hyp = rec.finish()
    return hyp.text, hyp.confidence


def test_an_answer_both_hear_over_a_short_window_stands_without_the_whole_window() -> None:
    whisper = Whisper(quick="yes", whole="yes")
    text, confidence = heard(("yes", 0.6), whisper)
    assert (text, whisper.windows) == ("yes", [10.0])
    assert confidence >= 0.6


def test_a_quick_opinion_that_differs_is_not_believed_and_the_whole_window_decides() -> None:
    whisper = Whisper(quick="yes", whole="no")
    assert heard(("no", 0.6), whisper)[0] == "no"
    assert whisper.windows == [10.0, WINDOW_SEC]
    # the quick opinion alone never answers: the decoder heard no, the quick opinion yes,
    # and the whole window a sentence that answers nothing
    whisper = Whisper(quick="yes", whole="the weather is cold this week")
    _, confidence = heard(("no", 0.6), whisper)
    assert confidence == 0.0 and whisper.windows == [10.0, WINDOW_SEC]


def test_a_command_and_a_sure_decoder_never_take_the_quick_way() -> None:
    whisper = Whisper(quick="agent", whole="agent")
    heard(("agent", 0.95), whisper, "main_menu")
    assert whisper.windows == [WINDOW_SEC]  # a person is called for on the whole window only
    whisper = Whisper(quick="done", whole="done")
    assert heard(("done", 0.95), whisper, "step_done") == ("done", 0.95)
    assert whisper.windows == []  # the decoder is sure: no opinion asked


def test_no_quick_opinion_when_it_is_off_or_the_answer_does_not_fit_the_window() -> None:
    whisper = Whisper(quick="yes", whole="yes")
    heard(("yes", 0.6), whisper, window=0.0)
    assert whisper.windows == [WINDOW_SEC]
    whisper = Whisper(quick="yes", whole="yes")
    heard(("yes", 0.6), whisper, seconds=9.8)  # with the edges, longer than 10 s
    assert whisper.windows == [WINDOW_SEC]


def test_an_unsure_decoder_below_the_reject_bar_gets_the_whole_window() -> None:
    whisper = Whisper(quick="done", whole="done")
    heard(("done", 0.3), whisper, "step_done")
    assert whisper.windows == [WINDOW_SEC]


def test_the_decoder_scores_its_answer_only_where_an_unsure_answer_may_stand() -> None:
    for ask, phrases, asked in (
        ("yes_no", Route.BOTH, ["unscored"]),  # Whisper judges the answer
        ("main_menu", Route.BOTH, ["unscored"]),
        ("step_done", Route.BOTH, ["scored"]),  # undoable: its unsure answer may stand
        ("yes_no", Route.GRAMMAR, ["scored"]),  # the decoder alone
    ):
        decoder = Decoder("yes", 0.6)
        routed_engine(decoder, Whisper(quick="", whole=""), phrases=phrases).recognizer(
            EN.get(ask), RATE, {}
        )
        assert decoder.asked == asked, (ask, phrases)


def test_an_unscored_answer_is_heard_by_whisper_and_never_stands_alone() -> None:
    # Whisper hears it too over the short window: the answer, with Whisper's confidence
    whisper = Whisper(quick="yes", whole="yes")
    assert heard(("yes", 0.6), whisper) == ("yes", 0.8)
    assert whisper.windows == [10.0]
    # Whisper heard nothing, or a sentence that answers nothing: no answer
    for whole in ("", "the weather is cold this week"):
        whisper = Whisper(quick="", whole=whole)
        assert heard(("yes", 0.6), whisper)[1] == 0.0
        assert whisper.windows == [10.0, WINDOW_SEC]


def test_an_unsure_answer_stands_against_a_misspelling_only_where_it_is_undone_in_a_word() -> None:
    # a walkthrough step: a phone-line "done" the decoder heard unsure and Whisper wrote "no"
    whisper = Whisper(quick="nah", whole="no")
    assert heard(("done", 0.67), whisper, "step_done") == ("done", 0.67)
    # the main menu: a piece of "ticket status" the decoder took for "password" and Whisper
    # wrote "good" is asked again, not sent to account recovery
    whisper = Whisper(quick="let's go", whole="good")
    assert heard(("password", 0.67), whisper, "main_menu") == ("good", 0.0)
    # nor at a yes/no ask, where a wrong yes would confirm a wrong number
    whisper = Whisper(quick="sir please", whole="sir please")
    assert heard(("yes", 0.6), whisper)[1] == 0.0
