"""Whisper in a recognition worker: the model, held once per process, and one utterance
decoded (faster-whisper on CTranslate2).

Whisper writes text where nobody spoke ("Thank you.", "you", "six, six, six" on silence,
noise, tones or keypad beeps). ``Decoded.invented`` holds the model's own signs of it:
no-speech probability over 0.6 with an average log-probability under -1, or text that
repeats itself (compression ratio over 2.4). The engine (``ivr.speech.asr.whisper``)
sends utterances here through the worker pool (``ivr.speech.asr.pool``).
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ivr.speech.asr.choices import UNPROMPTED_TOKENS, Weighed, needs_weighing, weigh
from ivr.speech.level import frame_levels
from ivr.speech.understand import syllables
from ivr.speech.vad import voiced_span

WHISPER_RATE: Final = 16000
WINDOW_SEC: Final = 30.0  # what the model was trained on: every encode sees 30 s
NO_SPEECH_PROB: Final = 0.6
NO_SPEECH_LOGPROB: Final = -1.0
MAX_COMPRESSION: Final = 2.4
EDGE_SEC: Final = 0.3
LOUD_FRAME: Final = 160  # 10 ms
LOUD_OVER_FLOOR_DB: Final = 15.0
LOUD_UNDER_PEAK_DB: Final = 30.0
# low dither, not digital silence, before and after the utterance: measured on single digits
# cut tight, it turns about one miss in four into a hit
EDGE: Final = (
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
    alternatives: tuple[tuple[str, float], ...] = ()  # (text, average log-probability)
    weighed: Weighed | None = None  # the ask's phrases laid over the audio (choices.py)
    voiced_sec: float = 0.0  # how long the voice lasted, as Silero VAD found it
    unprompted: str | None = None  # decoded again without the prompt (choices.said_more)

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
        return confidence_of(self.text, self.avg_logprob)


def confidence_of(text: str, avg_logprob: float) -> float:
    """``Decoded.confidence`` for any hypothesis of the beam."""
    return 0.0 if not text else 0.5 + 0.5 * min(1.0, math.exp(avg_logprob))


def _model(path: str, threads: int) -> Any:
    with _models_lock:
        key = (path, threads)
        if key not in _models:
            from faster_whisper import WhisperModel

            _models[key] = WhisperModel(
                path, device="cpu", compute_type="int8", cpu_threads=threads
            )
        return _models[key]


def load(path: str, threads: int, language: str, prompt: str | None, beam_size: int) -> bool:
    """Load a model into this process and decode once as an ask would (a worker warming up).

    The first encode and the first beam search of a fresh model allocate their buffers and
    cost several times a later one; a first beam search alone took about 100 MB more
    (measured through SIP). Done here, with the engine's beam and a prompt as long as an
    ask's, before calls come, the first caller's answer is not the slow one, and a worker's
    memory is what it holds when it starts.
    """
    from faster_whisper.audio import pad_or_trim

    model = _model(path, threads)
    features = pad_or_trim(model.feature_extractor(EDGE)[:, :-1])
    _generate(model, model.encode(features), language, prompt, beam_size)
    return True


def written(tokenizer: Any, ids: list[int]) -> str:
    """A hypothesis's text. A Mandarin character is often two or three byte tokens, and a
    hypothesis may end between them ("询查询" cut after "询查" and one byte): the broken
    character is no text, and never reaches an answer or a transcript."""
    return tokenizer.decode(ids).replace("\ufffd", "").strip()


def _generate(
    model: Any,
    encoded: Any,
    language: str,
    prompt: str | None,
    beam_size: int,
    max_length: int | None = None,
) -> tuple[list[tuple[str, float]], float]:
    """The beam's finished hypotheses, best first, each with its average log-probability
    (per token, end of text counted, as faster-whisper reports it), and the no-speech
    probability. ``max_length``: tokens at most (the model's own limit by default)."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
    result = model.model.generate(
        encoded,
        [model.get_prompt(tokenizer, previous, without_timestamps=True)],
        beam_size=beam_size,
        num_hypotheses=beam_size,
        length_penalty=1.0,
        max_length=max_length or model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
    )[0]
    hypotheses: list[tuple[str, float]] = []
    for ids, score in zip(result.sequences_ids, result.scores, strict=True):
        text = written(tokenizer, ids)
        if text and text not in (t for t, _ in hypotheses):
            hypotheses.append((text, score * len(ids) / (len(ids) + 1)))
    return hypotheses, result.no_speech_prob


def decode(
    path: str,
    threads: int,
    audio: np.ndarray,
    language: str,
    prompt: str | None,
    beam_size: int,
    to_voice: bool = False,
    choices: tuple[str, ...] = (),
    window_sec: float = WINDOW_SEC,
) -> Decoded:
    """One utterance (at most ``window_sec``), 16 kHz float32 mono, decoded at temperature 0.

    The beam's other finished hypotheses come back as ``alternatives``: when the best one
    is no answer to the ask, the next one that is may be (``WhisperEngine.transcribe``).
    Each of ``choices`` (an ask's phrases) comes back weighed against the same encoding.
    A window shorter than the model's 30 s encodes in a fraction of the time but is heard
    less well (README, *A quick second opinion*): only for an opinion that must agree.
    """
    span = voiced_span(audio)
    if span is None:
        return Decoded("", -10.0, 1.0, 0.0)
    voiced_sec = (span[1] - span[0]) / WHISPER_RATE
    if to_voice:
        # a digit string: the voice and 0.3 s around it. Over a second of silence around a
        # number (the endpointer waits 1.5 s after a digit) made Whisper write a digit more
        # ("... eight zero zero zero zero"); on phrases, cutting changed words both ways.
        first, last = loud_extent(audio, span)
        margin = int(EDGE_SEC * WHISPER_RATE)
        start = max(0, first - margin)
        audio = audio[start : last + margin]
        span = (span[0] - start, span[1] - start)
    from faster_whisper.audio import pad_or_trim

    model = _model(path, threads)
    frames = int(window_sec * WHISPER_RATE) // model.feature_extractor.hop_length
    features = pad_or_trim(model.feature_extractor(audio)[:, :-1], frames)
    encoded = model.encode(features)
    hypotheses, no_speech = _generate(model, encoded, language, prompt, beam_size)
    best = hypotheses[0][0] if hypotheses else ""
    weighed = unprompted = None
    if choices and needs_weighing(best, choices):
        weighed = weigh(model, encoded, language, choices, span[1])
    if choices and (weighed is not None or syllables(best) == 1):
        # a one-syllable answer, written or to be chosen: what is heard without the prompt
        found, _ = _generate(model, encoded, language, None, 1, UNPROMPTED_TOKENS)
        unprompted = found[0][0] if found else ""
    if not hypotheses:
        return Decoded(
            "", -10.0, 1.0, 0.0, weighed=weighed, voiced_sec=voiced_sec, unprompted=unprompted
        )
    text, avg = hypotheses[0]
    return Decoded(
        text=text,
        avg_logprob=avg,
        no_speech_prob=no_speech,
        compression_ratio=compression_ratio(text),
        alternatives=tuple(hypotheses[1:]),
        weighed=weighed,
        voiced_sec=voiced_sec,
        unprompted=unprompted,
    )


def loud_extent(audio: np.ndarray, span: tuple[int, int]) -> tuple[int, int]:
    """The voice found, widened to the first and last 10 ms that are loud (within
    ``LOUD_UNDER_PEAK_DB`` of the loudest and ``LOUD_OVER_FLOOR_DB`` over the quietest tenth).

    A cut to the voice must cut only the line around it. Silero finds part of some voices
    and not the rest: a recorded Mandarin phone number said digit by digit, loud, over the
    phone, had its voice found in 0.3 s of its 7 s, and the cut left Whisper two digits
    (8 of 10 such numbers came back whole without the cut, 2 with it).
    """
    level = frame_levels(audio, LOUD_FRAME)
    if not len(level):
        return span
    floor = float(np.percentile(level, 10))
    bar = max(
        floor * 10 ** (LOUD_OVER_FLOOR_DB / 20), level.max() * 10 ** (-LOUD_UNDER_PEAK_DB / 20)
    )
    loud = np.nonzero(level >= bar)[0]
    if not len(loud):
        return span
    return min(span[0], int(loud[0]) * LOUD_FRAME), max(span[1], (int(loud[-1]) + 1) * LOUD_FRAME)


def compression_ratio(text: str) -> float:
    """How well the text compresses: over 2.4, Whisper is repeating itself."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
