"""Speech synthesis: pyttsx3 driving espeak-ng, through one worker, with a prompt cache.

pyttsx3 is not thread-safe (two engines created at once crash the process; a
shared engine without a lock loses files), so every synthesis goes through a
single worker thread that owns the one engine. Quirks absorbed here:

* queued ``setProperty`` calls are applied out of order by pyttsx3 2.99's
  espeak driver, and even a synchronous rate change was lost in about one
  synthesis in six; so the voice is set on the driver synchronously and the
  rate travels inside the text as an espeak-ng embedded command (``\x01150S``);
* the driver prints "Audio saved to ..." on stdout: routed to the debug log;
* ``runAndWait`` may return before the WAV is complete: every file is checked
  (complete header, frames present) and synthesised again once if not.

What a caller hears is a :class:`Speech`: segments of text, each with its own
rate, and pauses between them (pauses between sentences and digit groups help
older listeners more than a much lower rate does).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import queue
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.audio import Audio, read_audio, resample, silence, write_wav

log = logging.getLogger(__name__)

TRIM_DBFS: Final = -55.0
EDGE_MS: Final = 40
WAV_WAIT_SEC: Final = 2.0
CACHE_VERSION: Final = 2  # bump when the way audio is made changes
# segments kept in memory, least recently used dropped first: read-backs of numbers make new
# texts on every call, so an unbounded map grew for as long as the process ran (the soak)
MEMORY_CACHE_BYTES: Final = 64 * 2**20
EMBEDDED: Final = "\x01"  # espeak-ng embedded command: "\x01150S" sets the speed for the text


@dataclass(frozen=True)
class Segment:
    text: str
    rate_wpm: int


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


class _Worker:
    """The single thread that owns the pyttsx3 engine."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tts-worker", daemon=True)
        self._ready: Future[None] = Future()
        self._thread.start()
        self._ready.result(timeout=30)

    def _run(self) -> None:
        try:
            import pyttsx3
            from pyttsx3.drivers import espeak as espeak_driver

            def quiet(*args: object, **_kw: object) -> None:
                log.debug("pyttsx3: %s", " ".join(map(str, args)))

            espeak_driver.print = quiet  # the driver prints "Audio saved to ..." on stdout
            engine = pyttsx3.init("espeak")
        except Exception as exc:  # pyttsx3 raises many kinds when espeak-ng is missing
            self._ready.set_exception(
                EngineError(
                    f"speech synthesis unavailable: {exc} (install espeak-ng: apt-get install espeak-ng)"  # noqa: E501
                )
            )
            return
        self._ready.set_result(None)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(engine))
            except Exception as exc:  # handed to the caller through the future
                fut.set_exception(exc)

    def submit(self, fn: Callable[[Any], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _get_worker() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        return _worker


def _wav_ok(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() > 0 and len(w.readframes(w.getnframes())) == w.getnframes() * 2
    except (wave.Error, EOFError, OSError):
        return False


def _synthesize_file(engine: Any, text: str, voice: str, rate_wpm: int, path: Path) -> None:
    driver = engine.proxy._driver  # synchronous property setting, see module docstring
    try:
        driver.setProperty("voice", voice)
    except ValueError as exc:
        raise EngineError(f"espeak-ng has no voice {voice!r}: {exc}") from exc
    driver.setProperty("rate", int(rate_wpm))
    for _attempt in range(3):
        path.unlink(missing_ok=True)
        engine.save_to_file(f"{EMBEDDED}{int(rate_wpm)}S{text}", str(path))
        engine.runAndWait()
        deadline = time.monotonic() + WAV_WAIT_SEC
        while time.monotonic() < deadline:  # the driver may finish writing after returning
            if _wav_ok(path):
                return
            time.sleep(0.01)
        log.warning("incomplete synthesis output, synthesising again")
    raise EngineError(f"espeak-ng produced no usable audio for {len(text)} characters of text")


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

    @staticmethod
    def cache_key(text: str, voice: str, rate_wpm: int, sample_rate: int) -> str:
        raw = f"{CACHE_VERSION}\x00{text}\x00{voice}\x00{rate_wpm}\x00{sample_rate}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def segment(self, text: str, *, voice: str, rate_wpm: int, sample_rate: int) -> np.ndarray:
        key = self.cache_key(text, voice, rate_wpm, sample_rate)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
        if hit is not None:
            return hit
        path = self.cache_dir / key[:2] / f"{key}.wav"
        if path.exists() and _wav_ok(path):
            audio = read_audio(path)
            samples = resample(audio.samples, audio.rate, sample_rate)
        else:
            samples = self._synthesize(text, voice, rate_wpm, sample_rate)
            write_wav(path, samples, sample_rate)
        with self._lock:
            if key not in self._memory:
                self._memory[key] = samples
                self._memory_bytes += samples.nbytes
            while self._memory_bytes > self.memory_limit_bytes and len(self._memory) > 1:
                _, dropped = self._memory.popitem(last=False)
                self._memory_bytes -= dropped.nbytes
        return samples

    def _synthesize(self, text: str, voice: str, rate_wpm: int, sample_rate: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
            out = Path(tmp) / "out.wav"
            _get_worker().submit(
                lambda engine: _synthesize_file(engine, text, voice, rate_wpm, out)
            ).result(timeout=60)
            audio = read_audio(out)
        return trim(resample(audio.samples, audio.rate, sample_rate), sample_rate)

    def render(self, speech: Speech, *, voice: str, sample_rate: int) -> Audio:
        chunks: list[np.ndarray] = []
        for part in speech.parts:
            if isinstance(part, Pause):
                chunks.append(silence(sample_rate, part.ms))
            elif part.text.strip():
                chunks.append(
                    self.segment(
                        part.text, voice=voice, rate_wpm=part.rate_wpm, sample_rate=sample_rate
                    )
                )
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return Audio(samples.astype(np.int16), sample_rate)
