"""espeak-ng through pyttsx3, in a voice process of its own.

Why a process of its own (:func:`voice_process`): espeak-ng crashed twice with a
segfault inside a busy process (a test process that had loaded Piper, Whisper and
PyAV), and a crash in the process that carries the calls would drop every call. A
voice process that dies is replaced and the segment made again, as a recognition
worker is. pyttsx3 is not thread-safe (two engines created at once crash the
process; a shared engine without a lock loses files), so in that process every
synthesis goes through a single worker thread that owns the one engine. Quirks
absorbed here:

* queued ``setProperty`` calls are applied out of order by pyttsx3 2.99's
  espeak driver, and even a synchronous rate change was lost in about one
  synthesis in six; so the voice is set on the driver synchronously and the
  rate travels inside the text as an espeak-ng embedded command (``\x01150S``);
* the driver prints "Audio saved to ..." on stdout: routed to the debug log;
* ``runAndWait`` may return before the WAV is complete: every file is checked
  (complete header, frames present) and synthesised again if not;
* in retrieval mode espeak-ng sometimes drops a message it was given and reports
  it ended, with no audio before (one synthesis in 30 to 250 on a busy machine, one
  in 25 when each waited for espeak-ng to be idle; never seen idle): the driver then
  writes a WAV of no frames, which is synthesised again at once rather than
  waited on.
"""

from __future__ import annotations

import atexit
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final

from ivr.errors import EngineError
from ivr.speech.audio import Audio, read_audio, wav_frames
from ivr.speech.processes import WorkerPool

log = logging.getLogger(__name__)

WAV_WAIT_SEC: Final = 2.0
EMBEDDED: Final = "\x01"  # espeak-ng embedded command: "\x01150S" sets the speed for the text


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
            frames = wav_frames(path)
            if frames:
                return
            if frames == 0:  # the message ended unsaid (see module docstring): at once again
                log.debug("espeak-ng ended a message without audio, synthesising again")
                break
            time.sleep(0.01)
        else:
            log.warning("incomplete synthesis output, synthesising again")
    raise EngineError(f"espeak-ng produced no usable audio for {len(text)} characters of text")


def _synthesize_here(text: str, voice: str, rate_wpm: int) -> Audio:
    """espeak-ng's audio of ``text``, made in this process (the voice process's job)."""
    with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
        out = Path(tmp) / "out.wav"
        _get_worker().submit(
            lambda engine: _synthesize_file(engine, text, voice, rate_wpm, out)
        ).result(timeout=60)
        return read_audio(out)


_voice_process: WorkerPool | None = None


def voice_process() -> WorkerPool:
    """The process that runs espeak-ng for this one (started at its first synthesis)."""
    global _voice_process
    with _worker_lock:
        if _voice_process is None:
            _voice_process = WorkerPool(1, what="speech synthesis")
        return _voice_process


@atexit.register
def close_voice_process() -> None:
    """Stop the voice process (at exit; multiprocessing's own exit must call it itself)."""
    with _worker_lock:
        pool = _voice_process
    if pool is not None:
        pool.close()


def _start() -> None:
    _get_worker()


def warm() -> None:
    """Start the voice process and espeak-ng in it, before a call needs a segment made."""
    voice_process().warm(_start)


def synthesize(text: str, voice: str, rate_wpm: int) -> Audio:
    """espeak-ng's audio of ``text`` in ``voice`` at ``rate_wpm``, made in the voice process."""
    return voice_process().run(_synthesize_here, text, voice, rate_wpm)
