"""Whisper behind the Recognizer interface: the engine a call's asks go to.

Each ask steers Whisper with a prompt (``whisper_text.grammar_prompt``), and what it
writes is mapped onto the grammar afterwards (``ivr.speech.understand``): text that maps
to no value is no match. Only audio the endpointer took for speech and in which Silero
VAD finds a voice reaches it; a decode the model itself marks as invented
(``whisper_decode.Decoded.invented``), or whose text fails the checks of
``whisper_text``, is dropped, and the grammar match does the rest. Decoding runs in the
recognition worker processes (``ivr.speech.asr.pool``, ``whisper_decode``); a call holds
only its utterance's audio.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer, shown
from ivr.speech.asr.choices import choices_for, choose, outlasts, said_more
from ivr.speech.asr.pool import RecognitionPool
from ivr.speech.asr.whisper_decode import (
    EDGE,
    MAX_COMPRESSION,
    WHISPER_RATE,
    WINDOW_SEC,
    Decoded,
    compression_ratio,
    confidence_of,
    decode,
    load,
)
from ivr.speech.asr.whisper_text import (
    collapse_repeats,
    command_in_doubt,
    echoes_prompt,
    grammar_prompt,
    loops,
)
from ivr.speech.audio import resample
from ivr.speech.dtmf import keys_in
from ivr.speech.grammar import Grammar
from ivr.speech.understand import bare_answer, syllables

log = logging.getLogger(__name__)

MIN_AUDIO_MS: Final = 100
# the beam's next hypothesis may answer when the best does not (WhisperEngine._understood)
ALTERNATIVE_MARGIN: Final = 0.8
ALTERNATIVE_FLOOR: Final = -1.3
ALTERNATIVE_NO_SPEECH: Final = 0.5
# ... and writes about the syllables the best one wrote: Mandarin writes one character a
# syllable, and a next guess shorter by more (好 for 今天 去 很好) is another utterance
ALTERNATIVE_DROPPED_SYLLABLES: Final = 1
CHOSEN_CONFIDENCE: Final = 0.75  # a phrase chosen by its fit: accepted, and read back as usual
GUESS_THREADS: Final = 8  # early decodes only start on an idle worker: few at once
# a number of this many digits or more is heard over ``number_window_sec``; one digit alone
# is heard worse over any window shorter than 30 s (README, *A shorter window for numbers*)
NUMBER_MIN_DIGITS: Final = 3


def _said_more(grammar: Grammar, answer: str, result: Decoded) -> bool:
    """``choices.said_more`` on the decode's text without the prompt, logged when it holds."""
    if not said_more(grammar, answer, result.unprompted):
        return False
    log.debug(
        "whisper: a longer word without the prompt (%s)", shown(result.unprompted or "", grammar)
    )
    return True


def _whole_number(grammar: Grammar | None, hyp: Hypothesis) -> bool:
    """``hyp`` answers the ask with a number of the length and a shape it expects."""
    if grammar is None or not hyp.text:
        return False
    meant = grammar.interpret(hyp.text)
    return (
        meant is not None
        and meant.digits is not None
        and meant.detail is None
        and not grammar.unusual(meant)
    )


def fits(audio: np.ndarray, rate: int, window_sec: float) -> bool:
    """The utterance, with the edges ``transcribe`` adds, fits in an encoder window."""
    return len(audio) / rate + 2 * len(EDGE) / WHISPER_RATE <= window_sec


class WhisperEngine(Engine):
    """A Whisper model for one locale, decoded in the shared worker pool."""

    def __init__(
        self,
        path: Path,
        locale: str,
        *,
        pool: RecognitionPool,
        model_name: str = "whisper",
        threads: int = 1,
        beam_size: int = 5,
        warm_prompt: str | None = None,
        number_window_sec: float = WINDOW_SEC,
    ) -> None:
        """``warm_prompt``: what a worker's first decode is steered with (``load``), the
        locale's example digit string; without one it decodes unprompted.
        ``number_window_sec``: the encoder's window at an ask for a number (``window_for``)."""
        self.path = str(path)
        self.locale = locale
        self.language = locale.split("-", 1)[0].lower()
        self.name = model_name
        self.pool = pool
        self.threads = threads
        self.beam_size = beam_size
        self.warm_prompt = warm_prompt
        self.number_window_sec = number_window_sec
        self._guess_lock = threading.Lock()
        self._guess_threads: concurrent.futures.ThreadPoolExecutor | None = None

    def warm(self) -> None:
        self.pool.warm(
            load, self.path, self.threads, self.language, self.warm_prompt, self.beam_size
        )

    def guesses(self) -> concurrent.futures.ThreadPoolExecutor:
        """Threads that wait on the workers for decodes begun before a turn ended."""
        with self._guess_lock:
            if self._guess_threads is None:
                self._guess_threads = concurrent.futures.ThreadPoolExecutor(
                    max_workers=GUESS_THREADS, thread_name_prefix="whisper-guess"
                )
            return self._guess_threads

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        return WhisperRecognizer(self, grammar, sample_rate)

    def window_for(self, grammar: Grammar | None, audio: np.ndarray, rate: int) -> float:
        """The encoder's window for this utterance at this ask.

        A number of several digits (a code, a ticket, a phone number) is heard as well over
        a shorter window, which encodes in well under half the time, as over the model's
        30 s (README, *A shorter window for numbers*); anything else, or a number too long
        for the shorter window, is heard over 30 s.
        """
        window = self.number_window_sec
        if (
            window < WINDOW_SEC
            and grammar is not None
            and grammar.digits is not None
            and grammar.digits.min >= NUMBER_MIN_DIGITS
            and fits(audio, rate, window)
        ):
            return window
        return WINDOW_SEC

    def unknown_words(self, words: set[str]) -> list[str]:
        return []  # open vocabulary: any word can be written

    def transcribe(
        self,
        audio: np.ndarray,
        rate: int,
        grammar: Grammar | None,
        *,
        window_sec: float | None = None,
    ) -> Hypothesis:
        """Decode int16 audio at ``rate``; an invented or empty decode comes back empty.

        ``window_sec``: what the encoder sees (``whisper_decode.decode``); the utterance and
        its edges must fit in it (``fits``). By default, the ask's (``window_for``): over a
        number's shorter window, only a whole number of a usual shape stands, and anything
        else is heard again over the whole window (Whisper over a shorter window more often
        writes a digit too many after repeated ones, "eight zero zero zero zero").
        """
        if window_sec is not None:
            return self._transcribe(audio, rate, grammar, window_sec)
        window_sec = self.window_for(grammar, audio, rate)
        hyp = self._transcribe(audio, rate, grammar, window_sec)
        if window_sec < WINDOW_SEC and not _whole_number(grammar, hyp):
            log.debug("whisper: no whole number over %.0f s; heard over 30 s", window_sec)
            return self._transcribe(audio, rate, grammar, WINDOW_SEC)
        return hyp

    def _transcribe(
        self, audio: np.ndarray, rate: int, grammar: Grammar | None, window_sec: float
    ) -> Hypothesis:
        if len(audio) * 1000 < MIN_AUDIO_MS * rate:
            return Hypothesis("", 0.0, self.name)
        if keys_in(audio, rate):  # keys, which the channel takes: Whisper writes words for them
            log.debug("whisper: keypad tones, no words")
            return Hypothesis("", 0.0, self.name)
        pcm = resample(audio.astype(np.int16), rate, WHISPER_RATE).astype(np.float32) / 32768.0
        pcm = np.concatenate([EDGE, pcm, EDGE])  # a word cut tight (barge-in) still has edges
        prompt = grammar_prompt(grammar, self.locale)
        digits = grammar is not None and grammar.digits is not None
        choices = choices_for(grammar, self.locale)
        result: Decoded = self.pool.run(
            decode,
            self.path,
            self.threads,
            pcm,
            self.language,
            prompt,
            self.beam_size,
            digits,
            choices,
            window_sec,
        )
        example = grammar is not None and bool(prompt) and prompt == grammar.numbers.example
        numbers = grammar is not None and grammar.says_digits
        digit_words = grammar.digit_words if grammar is not None and numbers else None
        if (
            (not digits and loops(result.text, digit_words))
            or result.invented
            or echoes_prompt(
                result.text if numbers else collapse_repeats(result.text),
                prompt,
                whole_items_too=example,
            )
        ):
            log.debug("whisper: dropped a decode (%s)", shown(result.text, grammar))
            return self._chosen(result, grammar, "") or Hypothesis("", 0.0, self.name)
        # at a Mandarin phrase ask the fit tells near readings apart (choices.py); the beam's
        # next guess there answered 24 recorded words that were no answer, and none that was
        text, avg = self._understood(result, prompt, grammar, beam=not choices)
        chosen = self._chosen(result, grammar, text)
        if chosen is not None:
            return chosen
        if (
            choices
            and grammar is not None
            and grammar.interpret(text) is not None
            and outlasts(grammar, text, result.voiced_sec)
        ):
            log.debug("whisper: an answer too short for the voice (%s)", shown(text, grammar))
            return Hypothesis("", 0.0, self.name)
        if grammar is not None and _said_more(grammar, text, result):
            return Hypothesis("", 0.0, self.name)
        if grammar is not None and grammar.extension is not None and grammar.extension.example:
            text, avg = self._extended(pcm, grammar, grammar.extension.example, text, avg)
        meant = grammar.interpret(text) if grammar is not None else None
        confidence = confidence_of(text, avg)
        if (
            meant is not None
            and grammar is not None
            and command_in_doubt(meant.value, confidence, grammar, prompt)
        ):
            log.debug("whisper: unsure command dropped (avg log-probability %.2f)", avg)
            return Hypothesis("", 0.0, self.name)
        return Hypothesis(text, confidence, self.name)

    def _chosen(self, result: Decoded, grammar: Grammar | None, text: str) -> Hypothesis | None:
        """The ask's phrase the audio fits best, where the free text cannot answer (choices.py)."""
        if result.weighed is None or grammar is None:
            return None
        phrase = choose(result.weighed, grammar, text, result.voiced_sec)
        if phrase is None:
            return None
        if _said_more(grammar, phrase, result):
            return Hypothesis("", 0.0, self.name)
        log.debug("whisper: chose a phrase by its fit (%s)", shown(phrase, grammar))
        return Hypothesis(phrase, CHOSEN_CONFIDENCE, self.name)

    def _extended(
        self, pcm: np.ndarray, grammar: Grammar, example: str, text: str, avg: float
    ) -> tuple[str, float]:
        """More than a bare answer ("no, it ends in 8 0 0 0"): heard once more, steered by
        the extension's example.

        Whisper writes what its prompt lists: shown only "yes, no", it turns a correction's
        digits into words of no meaning ("it ends in eight near or near"); shown an example
        correction, it writes the digits (README, Recognition). A bare yes or no is decoded
        once, as before. The second decode's answer (or its beam's next one, nearly as
        likely) counts only when it is an extension answer and no copy of the example.
        """
        if not text or bare_answer(grammar, text) is not None:
            return text, avg
        # cut to the voice, as for a digit ask: silence after digits makes Whisper add one
        again: Decoded = self.pool.run(
            decode, self.path, self.threads, pcm, self.language, example, self.beam_size, True
        )
        if again.invented:
            return text, avg
        floor = max(again.avg_logprob - ALTERNATIVE_MARGIN, ALTERNATIVE_FLOOR)
        answers: list[tuple[str, float, bool]] = []  # (text, score, of a usual shape)
        for said, score in ((again.text, again.avg_logprob), *again.alternatives):
            if score < floor:
                break
            meant = grammar.interpret(said)
            if (
                meant is not None
                and meant.detail is not None
                and not echoes_prompt(said, example, whole_items_too=True)
            ):
                answers.append((said, score, not grammar.unusual(meant)))
        # the likeliest answer, unless it says a number again with a digit too many and a
        # nearly as likely one says it in the usual shape
        if answers:
            said, score, _ = min(answers, key=lambda a: not a[2])  # the first usual, else first
            log.debug("whisper: heard again with the example (%s)", shown(said, grammar))
            return said, score
        return text, avg

    @staticmethod
    def _understood(
        result: Decoded, prompt: str | None, grammar: Grammar | None, *, beam: bool = True
    ) -> tuple[str, float]:
        """The best hypothesis, or (``beam``) the beam's next one that answers the ask.

        Whisper's best guess at one short word is often a near-sounding word ("Bye" for
        "five", "Nice" for "nine", "New" for "zero"), with the answer a little lower in the
        same beam; a phone number's best guess may have a digit too many, and the next one
        the usual shape (the grammar's ``usual``). The next hypothesis that maps onto the
        grammar is taken when it is nearly as likely as the best (``ALTERNATIVE_MARGIN``),
        likely enough on its own (``ALTERNATIVE_FLOOR``), the model was sure somebody spoke,
        it drops no more than a syllable of the best one's Mandarin
        (``ALTERNATIVE_DROPPED_SYLLABLES``), and it is no global command: a person is never
        called for on a second guess.
        """
        digits = grammar is not None and grammar.says_digits
        best = result.text if digits else collapse_repeats(result.text)
        if grammar is None:
            return best, result.avg_logprob
        # an answer, unless it is a number of a shape such numbers seldom have (a phone number
        # with a digit too many): then a next guess of the usual shape is looked for
        heard = grammar.interpret(best)
        unusual = grammar.unusual(heard)
        if heard is not None and not unusual:
            return best, result.avg_logprob
        if not beam or result.no_speech_prob >= ALTERNATIVE_NO_SPEECH:
            return best, result.avg_logprob
        floor = max(result.avg_logprob - ALTERNATIVE_MARGIN, ALTERNATIVE_FLOOR)
        written = syllables(best)
        for text, avg in result.alternatives:
            if avg < floor:
                break  # the beam comes back best first
            if not digits and loops(text):
                continue
            said = text if digits else collapse_repeats(text)
            if syllables(said) < written - ALTERNATIVE_DROPPED_SYLLABLES:
                continue
            meant = bare_answer(grammar, said)
            if (
                meant is None
                or meant.is_command
                or (unusual and grammar.unusual(meant))
                or echoes_prompt(said, prompt, whole_items_too=prompt == grammar.numbers.example)
            ):
                continue
            if compression_ratio(said) > MAX_COMPRESSION:
                continue
            log.debug("whisper: the beam's next answer taken (avg log-probability %.2f)", avg)
            return said, avg
        return best, result.avg_logprob


class EarlyDecode:
    """A decode of an utterance begun while the caller is quiet, before the turn has ended.

    The endpointer waits a while after the last word before it ends the turn (1.5 s after
    digits, for slow speakers). ``start`` sends the audio so far to Whisper during that
    wait, only when a worker is free (under load it would take a worker from another
    caller's answer); ``drop`` forgets it when the caller speaks again.
    """

    def __init__(self, engine: WhisperEngine, grammar: Grammar | None, sample_rate: int) -> None:
        self.engine = engine
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._future: concurrent.futures.Future[Hypothesis] | None = None
        self.window_sec = WINDOW_SEC  # the (first) window of the decode begun last

    def start(
        self,
        frames: list[np.ndarray],
        *,
        wait: bool,
        eager: bool = False,
        window_sec: float | None = None,
    ) -> None:
        """``window_sec``: the encoder's window (the ask's by default, ``window_for``)."""
        if self._future is not None or not frames:
            return
        if self.grammar is not None and self.grammar.extension is not None:
            # not at a read-back: a correction's digits ("no, it ends in 8 0 0 0") heard
            # with 0.4 s of silence after them came back with a digit too many
            return
        pool = self.engine.pool
        if not wait and (pool.busy() > 0 if eager else not pool.idle()):
            return
        audio = np.concatenate(frames)
        if window_sec is None:  # the ask's, and the whole one if a number's does not do
            self.window_sec = self.engine.window_for(self.grammar, audio, self.sample_rate)
        else:
            window_sec = window_sec if fits(audio, self.sample_rate, window_sec) else WINDOW_SEC
            self.window_sec = window_sec
        self._future = self.engine.guesses().submit(
            self.engine.transcribe, audio, self.sample_rate, self.grammar, window_sec=window_sec
        )
        if wait:
            concurrent.futures.wait([self._future])

    def drop(self) -> None:
        self._future = None

    def text(self) -> str:
        """What it heard, once done ("" before, or when it failed)."""
        future = self._future
        if future is None or not future.done() or future.exception() is not None:
            return ""
        return future.result().text

    def take(self) -> Hypothesis | None:
        """Its answer (waiting for it), or None: none started, or it failed."""
        future, self._future = self._future, None
        if future is None:
            return None
        try:
            return future.result()
        except EngineError as exc:
            log.warning("whisper: the early decode failed (%s); decoding again", exc)
            return None


class WhisperRecognizer(Recognizer):
    """Keeps the utterance's frames; decodes the whole utterance when it ends, or earlier.

    When the caller goes quiet (``pause()``) the utterance so far is decoded
    (``EarlyDecode``): its answer shows in ``partial()``, so a complete answer (all the
    digits of a phone number) ends the turn at once, and otherwise it is ready when the
    turn ends. If the caller speaks again (``resume()``), it is dropped.
    """

    def __init__(self, engine: WhisperEngine, grammar: Grammar | None, sample_rate: int) -> None:
        self.engine = engine
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._frames: list[np.ndarray] = []
        self._early = EarlyDecode(engine, grammar, sample_rate)

    def accept(self, frame: np.ndarray) -> None:
        self._frames.append(frame)

    def pause(self, *, wait: bool = False, eager: bool = False) -> None:
        self._early.start(self._frames, wait=wait, eager=eager)

    def resume(self) -> None:
        self._early.drop()

    def partial(self) -> str:
        return self._early.text()

    def finish(self) -> Hypothesis:
        frames, self._frames = self._frames, []
        early = self._early.take()
        if early is not None:
            return early
        audio = np.concatenate(frames) if frames else np.zeros(0, np.int16)
        return self.engine.transcribe(audio, self.sample_rate, self.grammar)

    def close(self) -> None:
        self._frames = []
        self._early.drop()
