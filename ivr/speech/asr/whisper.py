"""Whisper (faster-whisper on CTranslate2) behind the Recognizer interface.

Whisper transcribes rather than choosing among a grammar's phrases, so each ask
steers it with a prompt listing what the ask expects (the grammar's phrases, or the
digit words), and what it writes is mapped onto the grammar afterwards
(``ivr.speech.understand``): text that maps to no value is no match.

Whisper also writes text where nobody spoke ("Thank you.", "you", "six, six,
six" on silence, noise, tones or keypad beeps). Only audio the endpointer took
for speech and in which Silero VAD finds a voice reaches it, and a decode is
dropped when the model itself says there
was no speech (no-speech probability over 0.6 with an average log-probability
under -1) or when the text repeats itself (compression ratio over 2.4); the
grammar match does the rest. Decoding runs in the recognition worker processes
(``ivr.speech.asr.pool``); a call holds only its utterance's audio.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.asr.pool import RecognitionPool
from ivr.speech.audio import resample
from ivr.speech.grammar import COMMAND_PREFIX, Grammar, normalize
from ivr.speech.understand import is_hanzi
from ivr.speech.vad import has_voice_16k

log = logging.getLogger(__name__)

WHISPER_RATE: Final = 16000
NO_SPEECH_PROB: Final = 0.6
NO_SPEECH_LOGPROB: Final = -1.0
MAX_COMPRESSION: Final = 2.4
MAX_PROMPT_CHARS: Final = 600
MIN_AUDIO_MS: Final = 100
COMMAND_CONFIDENCE: Final = 0.68  # a global command needs average log-probability over about -1

EDGE_SEC: Final = 0.3
# low dither, not digital silence, before and after the utterance: measured on single digits
# cut tight, it turns about one miss in four into a hit
_EDGE: Final = (
    np.random.default_rng(0).standard_normal(int(EDGE_SEC * WHISPER_RATE)) * 5e-4
).astype(np.float32)

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float

    @property
    def invented(self) -> bool:
        """The model's own signs that it wrote text where nobody spoke."""
        silent = self.no_speech_prob > NO_SPEECH_PROB and self.avg_logprob < NO_SPEECH_LOGPROB
        return silent or self.compression_ratio > MAX_COMPRESSION

    @property
    def confidence(self) -> float:
        """In [0.5, 1] for a decode that passed the checks above: never below the reject band.

        Whisper's log-probabilities on one short word are low even when it is right; the
        invention checks and the grammar match are what reject, not this number.
        """
        return 0.0 if not self.text else 0.5 + 0.5 * min(1.0, math.exp(self.avg_logprob))


def _model(path: str, threads: int) -> Any:
    with _models_lock:
        key = (path, threads)
        if key not in _models:
            from faster_whisper import WhisperModel

            _models[key] = WhisperModel(
                path, device="cpu", compute_type="int8", cpu_threads=threads
            )
        return _models[key]


def load(path: str, threads: int) -> bool:
    """Load a model into this process (a worker warming up)."""
    _model(path, threads)
    return True


def decode(
    path: str, threads: int, audio: np.ndarray, language: str, prompt: str | None, beam_size: int
) -> Decoded:
    """One utterance, 16 kHz float32 mono, decoded greedily-stable (temperature 0)."""
    if not has_voice_16k(audio):
        return Decoded("", -10.0, 1.0, 0.0)
    model = _model(path, threads)
    segments, _info = model.transcribe(
        audio,
        language=language,
        beam_size=beam_size,
        temperature=0.0,  # the fallback ladder adds seconds and invents more
        initial_prompt=prompt,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,  # the endpointer already cut the utterance
    )
    segs = list(segments)
    if not segs:
        return Decoded("", -10.0, 1.0, 0.0)
    weights = [max(1, len(s.tokens)) for s in segs]
    avg = sum(s.avg_logprob * w for s, w in zip(segs, weights, strict=True)) / sum(weights)
    return Decoded(
        text=" ".join(s.text.strip() for s in segs).strip(),
        avg_logprob=avg,
        no_speech_prob=segs[0].no_speech_prob,
        compression_ratio=max(s.compression_ratio for s in segs),
    )


def grammar_prompt(grammar: Grammar | None, locale: str) -> str | None:
    """What the ask expects, written out: Whisper leans towards words it has just seen."""
    if grammar is None:
        return None
    chinese = locale.startswith("zh")
    sep = "，" if chinese else ", "  # noqa: RUF001 - Mandarin comma
    words: list[str] = []
    if grammar.digits is not None:
        seen: set[str] = set()
        for word, digit in grammar.digit_words.items():
            if digit not in seen:  # one word per digit: "zero, one, two, ..."
                seen.add(digit)
                words.append(word)
    else:
        # The ask's own answers, then (English) the global commands. A digit ask's prompt
        # holds digits alone: command phrases in it cost digits. Whisper base copies
        # Mandarin commands from its prompt when unsure ("主菜单" for 是的): answers only.
        own = [p for p, v in grammar.phrases.items() if not v.startswith(COMMAND_PREFIX)]
        words += own if chinese else own + [p for p in grammar.phrases if p not in own]
    if chinese:
        words = ["".join(w.split()) for w in words]
    text = sep.join(dict.fromkeys(words))
    return (text[:MAX_PROMPT_CHARS] + ("。" if chinese else ".")) if text else None


def collapse_repeats(text: str) -> str:
    """One word said once, written several times ("repeat, repeat", "no, no, no"): once.

    Whisper repeats a short answer it is unsure of. Not for digit asks: "five five" is two
    digits.
    """
    words = normalize(text).split()
    if any(is_hanzi(w) for w in words):
        return text  # Mandarin doubles characters in words of their own (谢谢, 看看)
    out: list[str] = []
    for word in words:
        if not out or out[-1] != word:
            out.append(word)
    return " ".join(out)


def echoes_prompt(text: str, prompt: str | None) -> bool:
    """Whisper, unsure, copied a piece of its prompt that breaks off inside an item.

    An item whole is a real answer (a caller says a choice the prompt lists); a run of
    the prompt that starts or stops mid-item ("查询工" of 查询工单) is not.
    """
    if not prompt or not text:
        return False
    items = [normalize(i).split() for i in re.split(r"[,，.。]", prompt) if normalize(i)]  # noqa: RUF001
    said = normalize(text).split()
    flat = [t for item in items for t in item]
    if len(said) < 2:
        return False
    edges = {0, *itertools.accumulate(len(i) for i in items)}
    found = [i for i in range(len(flat) - len(said) + 1) if flat[i : i + len(said)] == said]
    return bool(found) and all(i not in edges or i + len(said) not in edges for i in found)


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
    ) -> None:
        self.path = str(path)
        self.locale = locale
        self.language = locale.split("-", 1)[0].lower()
        self.name = model_name
        self.pool = pool
        self.threads = threads
        self.beam_size = beam_size

    def warm(self) -> None:
        self.pool.warm(load, self.path, self.threads)

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        return WhisperRecognizer(self, grammar, sample_rate)

    def unknown_words(self, words: set[str]) -> list[str]:
        return []  # open vocabulary: any word can be written

    def transcribe(self, audio: np.ndarray, rate: int, grammar: Grammar | None) -> Hypothesis:
        """Decode int16 audio at ``rate``; an invented or empty decode comes back empty."""
        if len(audio) * 1000 < MIN_AUDIO_MS * rate:
            return Hypothesis("", 0.0, self.name)
        pcm = resample(audio.astype(np.int16), rate, WHISPER_RATE).astype(np.float32) / 32768.0
        pcm = np.concatenate([_EDGE, pcm, _EDGE])  # a word cut tight (barge-in) still has edges
        prompt = grammar_prompt(grammar, self.locale)
        result: Decoded = self.pool.run(
            decode, self.path, self.threads, pcm, self.language, prompt, self.beam_size
        )
        if grammar is not None and grammar.digits is None:
            result = replace(result, text=collapse_repeats(result.text))
        if result.invented or echoes_prompt(result.text, prompt):
            log.debug("whisper: dropped %r (%s)", result.text, result)
            return Hypothesis("", 0.0, self.name)
        meant = grammar.interpret(result.text) if grammar is not None else None
        if meant is not None and meant.is_command and result.confidence < COMMAND_CONFIDENCE:
            # unsure Whisper falls back on words of its prompt, and the global commands are
            # in it: a person is only called for on a clear "agent" (the 30-call load test
            # caught "agent" written, at avg log-probability -1.6, for "ticket status")
            log.debug("whisper: unsure command %r dropped (%s)", result.text, result)
            return Hypothesis("", 0.0, self.name)
        return Hypothesis(result.text, result.confidence, self.name)


class WhisperRecognizer(Recognizer):
    """Keeps the utterance's frames; decodes the whole utterance when it ends."""

    def __init__(self, engine: WhisperEngine, grammar: Grammar | None, sample_rate: int) -> None:
        self.engine = engine
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._frames: list[np.ndarray] = []

    def accept(self, frame: np.ndarray) -> None:
        self._frames.append(frame)

    def partial(self) -> str:
        return ""

    def finish(self) -> Hypothesis:
        audio = np.concatenate(self._frames) if self._frames else np.zeros(0, np.int16)
        self._frames = []
        return self.engine.transcribe(audio, self.sample_rate, self.grammar)

    def close(self) -> None:
        self._frames = []
