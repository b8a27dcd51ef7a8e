"""Speech synthesis with a prompt cache: a natural Piper voice, or pyttsx3 driving espeak-ng.

Two backends sit behind :class:`Synthesizer`, chosen by the voice string
(:mod:`ivr.speech.voices`): ``piper:<voice>`` runs the voice's ONNX model
(:mod:`ivr.speech.piper`), and any other name is an espeak-ng voice, spoken in a
voice process of its own (:mod:`ivr.speech.espeak`). Whatever made it, a segment is trimmed,
resampled with soxr to the channel's rate and brought to the same active speech
level (:mod:`ivr.speech.level`) before it is cached.

The speaking rate of a segment is in words per minute as measured on the audio;
Piper reaches it through its length scale (``ivr/data/voices.toml`` holds each
voice's measured curve), espeak-ng through its own rate.

A digit of a read-back is its own segment, in the position it takes in its group
(start, middle, end): said as a list item that goes on ("four,") or, at the end of a
group, with the falling end of a sentence ("four."), and cached per position. A
code, a phone number or a ticket number is assembled from these segments and
pauses, with no synthesis and no cache entry holding more than one digit. (Cutting
the positions out of a spoken list "eight, eight, eight." was tried: a listener
heard its "eight" as "a" far more often than the word said alone.)

What a caller hears is a :class:`Speech`: segments of text, each with its own
rate, and pauses between them (pauses between sentences and digit groups help
older listeners more than a much lower rate does).
"""

from __future__ import annotations

import collections
import enum
import hashlib
import logging
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech import espeak, piper
from ivr.speech.audio import Audio, read_audio, resample, silence, wav_frames, write_wav
from ivr.speech.level import normalise
from ivr.speech.phrasing import phrase_rules
from ivr.speech.voices import natural_voice

log = logging.getLogger(__name__)

TRIM_DBFS: Final = -55.0
EDGE_MS: Final = 40
CACHE_VERSION: Final = 4  # bump when the way audio is made changes
# segments kept in memory, least recently used dropped first: read-backs of numbers make new
# texts on every call, so an unbounded map grew for as long as the process ran (the soak)
MEMORY_CACHE_BYTES: Final = 64 * 2**20


class Position(enum.StrEnum):
    """Where a digit stands in its group of a read-back."""

    START = "start"
    MIDDLE = "middle"
    END = "end"


RAW_KEEP: Final = 16  # segments whose unresampled audio is kept for the next sample rate


@dataclass(frozen=True)
class Segment:
    text: str
    rate_wpm: int
    position: str = ""  # a digit of a read-back: Position.START, MIDDLE or END


@dataclass(frozen=True)
class Pause:
    ms: int


@dataclass
class Speech:
    """Something the IVR says: segments and pauses in order, plus what the transcript shows."""

    parts: list[Segment | Pause] = field(default_factory=list)
    transcript: str = ""

    def add(self, other: Speech) -> Speech:
        joined = " ".join(t for t in (self.transcript, other.transcript) if t)
        return Speech([*self.parts, *other.parts], joined)

    def sentences(self) -> list[Speech]:
        """The parts cut before each sentence (a read-back stays with the sentence before it)."""
        out: list[Speech] = []
        current: list[Segment | Pause] = []
        for part in self.parts:
            starts = isinstance(part, Segment) and not part.position
            if starts and any(isinstance(p, Segment) for p in current):
                out.append(Speech(current))
                current = []
            current.append(part)
        if current:
            out.append(Speech(current))
        return out


def trim(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping a short natural edge."""
    if len(samples) == 0:
        return samples
    level = 32768 * 10 ** (TRIM_DBFS / 20)
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > level)[0]
    if len(loud) == 0:
        return samples[:0]
    edge = rate * EDGE_MS // 1000
    return samples[max(0, loud[0] - edge) : min(len(samples), loud[-1] + edge)]


class Synthesizer:
    """Renders :class:`Speech` to audio at a given rate, caching each segment on disk."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._memory: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._memory_bytes = 0
        self.memory_limit_bytes = MEMORY_CACHE_BYTES
        self._lock = threading.Lock()
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-ahead")
        # segments being loaded or made: calls that need one at the same time (callers who
        # reached the same prompt on a cold cache) wait for it instead of making it again
        self._making: dict[str, Future[np.ndarray]] = {}
        # the voice's own audio of the last few segments: one synthesis serves every rate
        self._raw: collections.OrderedDict[tuple[str, str, int, str], Audio] = (
            collections.OrderedDict()
        )

    @staticmethod
    def cache_key(
        text: str, voice: str, rate_wpm: int, sample_rate: int, position: str = ""
    ) -> str:
        raw = (
            f"{CACHE_VERSION}\x00{text}\x00{voice}\x00{rate_wpm}\x00{sample_rate}\x00{position}"
        ).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.wav"

    def is_cached(self, part: Segment, *, voice: str, sample_rate: int) -> bool:
        """Whether a segment plays without synthesis."""
        key = self.cache_key(part.text, voice, part.rate_wpm, sample_rate, part.position)
        with self._lock:
            if key in self._memory:
                return True
        return self._path(key).exists()

    def covers(self, speech: Speech, *, voice: str, sample_rate: int) -> bool:
        """Whether every segment of ``speech`` is in the cache."""
        return all(
            self.is_cached(p, voice=voice, sample_rate=sample_rate)
            for p in speech.parts
            if isinstance(p, Segment) and p.text.strip()
        )

    def segment(
        self, text: str, *, voice: str, rate_wpm: int, sample_rate: int, position: str = ""
    ) -> np.ndarray:
        key = self.cache_key(text, voice, rate_wpm, sample_rate, position)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
                return hit
            making = self._making.get(key)
            mine = making is None
            if mine:
                making = self._making[key] = Future()
        assert making is not None
        if not mine:  # another call is making this segment: one synthesis serves both
            return making.result()
        try:
            samples = self._load_or_make(key, text, voice, rate_wpm, sample_rate, position)
        except Exception as error:
            making.set_exception(error)
            raise
        except BaseException:  # interrupted: the calls waiting on it are told, not interrupted
            making.set_exception(EngineError(f"synthesis of {len(text)} characters stopped"))
            raise
        else:
            making.set_result(samples)
        finally:
            with self._lock:
                del self._making[key]
        return samples

    def _load_or_make(
        self, key: str, text: str, voice: str, rate_wpm: int, sample_rate: int, position: str
    ) -> np.ndarray:
        path = self._path(key)
        if path.exists() and wav_frames(path):
            audio = read_audio(path)
            samples = resample(audio.samples, audio.rate, sample_rate)
        else:
            samples = self._synthesize(text, voice, rate_wpm, sample_rate, position)
            write_wav(path, samples, sample_rate)
        with self._lock:
            if key not in self._memory:
                self._memory[key] = samples
                self._memory_bytes += samples.nbytes
            while self._memory_bytes > self.memory_limit_bytes and len(self._memory) > 1:
                _, dropped = self._memory.popitem(last=False)
                self._memory_bytes -= dropped.nbytes
        return samples

    def _synthesize(
        self, text: str, voice: str, rate_wpm: int, sample_rate: int, position: str = ""
    ) -> np.ndarray:
        raw = self._kept(
            (text, voice, rate_wpm, position),
            lambda: self._voice_audio(text, voice, rate_wpm, position),
        )
        out = trim(resample(raw.samples, raw.rate, sample_rate), sample_rate)
        if len(out) == 0:
            raise EngineError(f"synthesis produced only silence for {len(text)} characters")
        return normalise(out, sample_rate)

    def _kept(self, key: tuple[str, str, int, str], make: Callable[[], Audio]) -> Audio:
        with self._lock:
            audio = self._raw.get(key)
        if audio is None:
            audio = make()
            with self._lock:
                self._raw[key] = audio
                while len(self._raw) > RAW_KEEP:
                    self._raw.popitem(last=False)
        return audio

    def _voice_audio(self, text: str, voice: str, rate_wpm: int, position: str) -> Audio:
        """The segment as the voice makes it, at the voice's own rate."""
        natural = natural_voice(voice)

        def make(words: str) -> Audio:
            if natural is not None:
                return piper.synthesize(natural, words, rate_wpm)
            return espeak.synthesize(words, voice, rate_wpm)

        if position:
            if position not in set(Position):
                raise EngineError(f"expected a position in {list(Position)}, got {position!r}")
            # a list item goes on ("four,"); the last of a group falls to an end ("four.")
            return make(f"{text}." if position == Position.END else f"{text},")
        return make(text)

    def stream(self, speech: Speech, *, voice: str, sample_rate: int) -> Generator[Audio]:
        """The speech as audio to play one piece after the other.

        All of it at once when the cache covers it; otherwise sentence by sentence,
        the next one synthesised while the one before plays, and a natural voice's first
        sentence cut after its lead phrase (``ivr.speech.phrasing``) so that the caller
        hears it after a short phrase's synthesis, not a whole sentence's. Closing the iterator
        early (the caller barged in) drops the sentences not yet made.
        """
        if self.covers(speech, voice=voice, sample_rate=sample_rate):
            yield self.render(speech, voice=voice, sample_rate=sample_rate)
            return
        pieces = self._lead_first(speech.sentences(), voice=voice, sample_rate=sample_rate)
        ahead: list[Future[Audio]] = []
        try:
            first = self.render(pieces[0], voice=voice, sample_rate=sample_rate)
            ahead = [
                self._ahead.submit(self.render, piece, voice=voice, sample_rate=sample_rate)
                for piece in pieces[1:]
            ]
            yield first
            for future in ahead:
                yield future.result()
        finally:
            for future in ahead:
                future.cancel()

    def _lead_first(self, pieces: list[Speech], *, voice: str, sample_rate: int) -> list[Speech]:
        """The first sentence cut after its lead phrase when a natural voice must make it.

        The lead plays while the rest of the sentence is made (``ivr.speech.phrasing``);
        espeak-ng is fast enough to make any sentence whole.
        """
        natural = natural_voice(voice)
        rules = phrase_rules().get(natural.locale) if natural is not None else None
        if rules is None or not pieces:
            return pieces
        parts = pieces[0].parts
        at = next((i for i, p in enumerate(parts) if isinstance(p, Segment)), None)
        if at is None:
            return pieces
        first = parts[at]
        assert isinstance(first, Segment)
        cut = None if first.position else rules.lead(first.text)
        if cut is None or self.is_cached(first, voice=voice, sample_rate=sample_rate):
            return pieces
        lead = Speech([*parts[:at], Segment(cut[0], first.rate_wpm)])
        rest = Speech([Pause(rules.pause_ms), Segment(cut[1], first.rate_wpm), *parts[at + 1 :]])
        return [lead, rest, *pieces[1:]]

    def render(self, speech: Speech, *, voice: str, sample_rate: int) -> Audio:
        chunks: list[np.ndarray] = []
        for part in speech.parts:
            if isinstance(part, Pause):
                chunks.append(silence(sample_rate, part.ms))
            elif part.text.strip():
                chunks.append(
                    self.segment(
                        part.text,
                        voice=voice,
                        rate_wpm=part.rate_wpm,
                        sample_rate=sample_rate,
                        position=part.position,
                    )
                )
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return Audio(samples.astype(np.int16), sample_rate)
