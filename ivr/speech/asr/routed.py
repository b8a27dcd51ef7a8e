"""Which engine hears an ask: the grammar decoder, Whisper, or the decoder with a second opinion.

The routes come from the settings (``[asr]``) and were chosen by measurement (README,
"Recognition"). With ``grammar+whisper`` the grammar decoder streams as the caller
speaks (its partial answers end the turn) and Whisper hears the same frames: its answer
wins if it maps onto the grammar. The decoder scores its own answer (its all-phone pass,
three quarters of its work) only at an ask where an unsure answer may stand (below);
there its answer stands alone when it is sure and is not a global command. Elsewhere the
score would decide nothing Whisper does not (README, *Recognition*). Whisper
first hears them over a short window (``quick_window_sec``, several times faster): if it
hears the decoder's answer, that answer stands; if not, it hears them over its whole 30 s
window. A global command ("agent") is accepted only when Whisper hears it too, over its
whole window: a grammar decoder maps noise and unrelated speech onto short phrases, and a
caller who never asked for a person must not be transferred as if they had (the 30-call
SIP load test caught the decoder's "human" in a caller's "ticket status" when the decoder
alone was trusted). Where Whisper writes a word or two that answer nothing, the decoder's
unsure answer stands only at an ask whose wrong answer the caller undoes in a word (a
walkthrough step's "done", written "no"; ``undoable`` in the grammar): at the main menu a
piece of "ticket status" that the decoder took for "password" and Whisper wrote "good" is
asked again, not sent to account recovery.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Final

import numpy as np

from ivr.speech.asr.base import Engine, Hypothesis, Recognizer, shown
from ivr.speech.asr.whisper import EarlyDecode, WhisperEngine, fits
from ivr.speech.asr.whisper_decode import WINDOW_SEC
from ivr.speech.grammar import Grammar, Interpretation, normalize
from ivr.speech.vad import has_voice

log = logging.getLogger(__name__)

MAX_MISSPELT_WORDS: Final = 2  # Whisper words against which an unsure answer may stand


class Route(enum.StrEnum):
    GRAMMAR = "grammar"
    WHISPER = "whisper"
    BOTH = "grammar+whisper"


class RoutedEngine(Engine):
    """One locale's engines behind the one Engine interface the dialog knows."""

    def __init__(
        self,
        locale: str,
        *,
        grammar_engine: Engine | None,
        whisper: WhisperEngine | None,
        digits: Route,
        phrases: Route,
        dictation: Route,
        accept: float,
        reject: float,
        second_opinion_below: float = 0.9,
        quick_window_sec: float = 0.0,
    ) -> None:
        """``quick_window_sec``: Whisper's window for a quick second opinion (0: none)."""
        if grammar_engine is None and whisper is None:
            raise ValueError("a routed engine needs at least one engine")
        self.locale = locale
        self.grammar_engine = grammar_engine
        self.whisper = whisper
        self.routes = {"digits": digits, "phrases": phrases, "dictation": dictation}
        self.accept = accept
        self.reject = reject
        self.second_opinion_below = second_opinion_below
        self.quick_window_sec = quick_window_sec
        self.name = "+".join(e.name for e in (grammar_engine, whisper) if e is not None)

    def route(self, grammar: Grammar | None) -> Route:
        kind = "dictation" if grammar is None else "digits" if grammar.digits else "phrases"
        route = self.routes[kind]
        if self.whisper is None:
            return Route.GRAMMAR
        if self.grammar_engine is None:
            return Route.WHISPER
        return route

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        route = self.route(grammar)
        if route is Route.WHISPER:
            assert self.whisper is not None
            return self.whisper.recognizer(grammar, sample_rate, context)
        assert self.grammar_engine is not None
        if route is Route.GRAMMAR or grammar is None or self.whisper is None:
            return self.grammar_engine.recognizer(grammar, sample_rate, context)
        # Whisper judges the decoder's answer, which then needs no score of its own, save
        # where an unsure answer may stand without Whisper hearing it (an undoable ask)
        if grammar.undoable:
            first = self.grammar_engine.recognizer(grammar, sample_rate, context)
        else:
            first = self.grammar_engine.unscored(grammar, sample_rate, context)
        return SecondOpinion(first, self, grammar, sample_rate)

    def warm(self) -> None:
        for engine in (self.grammar_engine, self.whisper):
            if engine is not None:
                engine.warm()

    def unknown_words(self, words: set[str]) -> list[str]:
        if self.grammar_engine is None:
            return []
        return self.grammar_engine.unknown_words(words)


class SecondOpinion(Recognizer):
    """The grammar decoder streams; Whisper hears the utterance again when the decoder is unsure.

    Whisper's opinion may be begun while the caller is quiet (``pause()``, see
    ``EarlyDecode``), so that it is ready when the turn ends; the decoder's partial results
    alone decide when a complete answer ends the turn.
    """

    def __init__(
        self, first: Recognizer, engine: RoutedEngine, grammar: Grammar, sample_rate: int
    ) -> None:
        assert engine.whisper is not None
        self.first = first
        self.engine = engine
        self.whisper = engine.whisper
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._frames: list[np.ndarray] = []
        self._early = EarlyDecode(self.whisper, grammar, sample_rate)

    def accept(self, frame: np.ndarray) -> None:
        self._frames.append(frame)
        self.first.accept(frame)

    def pause(self, *, wait: bool = False, eager: bool = False) -> None:
        self.first.pause(wait=wait, eager=eager)
        # begun early, the opinion is the quick one where there is one (it must agree)
        window = self.engine.quick_window_sec or WINDOW_SEC
        self._early.start(self._frames, wait=wait, eager=eager, window_sec=window)

    def resume(self) -> None:
        self.first.resume()
        self._early.drop()

    def partial(self) -> str:
        return self.first.partial()

    def finish(self) -> Hypothesis:
        hyp = self.first.finish()
        meant = self.grammar.interpret(hyp.text)
        sure = self.engine.second_opinion_below
        audio = np.concatenate(self._frames) if self._frames else np.zeros(0, np.int16)
        self._frames = []
        if not has_voice(audio, self.sample_rate):
            self._early.drop()
            return Hypothesis(hyp.text, 0.0, self.engine.name)  # music, noise, tones: no voice
        if (
            meant is not None
            and not meant.is_command
            and meant.digits is None  # digits (a correction) always get Whisper's ear
            and hyp.confidence >= sure
        ):
            self._early.drop()  # the decoder is sure: Whisper's opinion is not needed
            return hyp
        early = self._early.take()
        quick = None
        if early is not None and self._early.window_sec < WINDOW_SEC:
            quick, early = early, None  # begun early over the short window
        likely = not hyp.scored or hyp.confidence >= self.engine.reject
        if early is None and meant is not None and likely:
            agreed = self._quick(audio, hyp, meant, quick)
            if agreed is not None:
                return agreed
        other = early or self.whisper.transcribe(audio, self.sample_rate, self.grammar)
        heard = self.grammar.interpret(other.text)
        log.debug(
            "second opinion: %s %.2f -> %s %.2f",
            shown(hyp.text, self.grammar),
            hyp.confidence,
            shown(other.text, self.grammar),
            other.confidence,
        )
        both = self.engine.name
        if heard is not None and meant is not None and heard.value == meant.value:
            return Hypothesis(other.text, max(other.confidence, hyp.confidence), both)
        if heard is not None and other.confidence >= self.engine.reject:
            return other  # Whisper heard an answer (or a command, in so many words)
        if (
            meant is not None
            and not meant.is_command
            and meant.digits is None  # the decoder's digits alone are never believed
            and hyp.confidence >= self.engine.reject
            and self.grammar.undoable
            and len(normalize(other.text).split()) <= MAX_MISSPELT_WORDS
        ):
            # unsure, and Whisper wrote nothing or a word or two that mean nothing here (a
            # short answer misspelt, "no" for "done"): at an ask whose wrong answer the
            # caller undoes in a word, the decoder's answer stands
            log.debug(
                "decoder's answer stands: %s against %s",
                shown(hyp.text, self.grammar),
                shown(other.text, self.grammar),
            )
            return hyp
        # Whisper heard a sentence that is no answer here: the decoder's guess is not believed
        return Hypothesis(other.text or hyp.text, 0.0, both)

    def _quick(
        self, audio: np.ndarray, hyp: Hypothesis, meant: Interpretation, quick: Hypothesis | None
    ) -> Hypothesis | None:
        """The decoder's answer, when Whisper heard the same over a short window.

        A short window encodes several times faster than Whisper's 30 s, and is heard less
        well: alone it would answer wrongly, so only agreement counts; otherwise Whisper
        hears the utterance again over its whole window, as before (README, *A quick second
        opinion*). Never for a global command or digits: those always get the whole window.
        ``meant``: what the decoder's answer means here; ``quick``: the opinion begun while
        the caller was quiet, if there is one.
        """
        window = self.engine.quick_window_sec
        if meant.is_command or meant.digits is not None:
            return None
        if quick is None:
            if not window or not fits(audio, self.sample_rate, window):
                return None
            quick = self.whisper.transcribe(
                audio, self.sample_rate, self.grammar, window_sec=window
            )
        heard = self.grammar.interpret(quick.text)
        if heard is None or heard.is_command or heard.value != meant.value:
            log.debug("quick opinion differs: %s", shown(quick.text, self.grammar))
            return None
        log.debug("quick opinion agrees: %s", shown(quick.text, self.grammar))
        return Hypothesis(quick.text, max(quick.confidence, hyp.confidence), self.engine.name)

    def close(self) -> None:
        self._frames = []
        self._early.drop()
        self.first.close()
