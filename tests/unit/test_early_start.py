"""When Whisper may start on an answer before the turn ends (the logic; no model here)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ivr.speech.asr.base import Hypothesis
from ivr.speech.asr.whisper import EarlyDecode


class Pool:
    def __init__(self, running: int, workers: int = 2) -> None:
        self.running, self.workers = running, workers

    def busy(self) -> int:
        return self.running

    def idle(self) -> bool:
        return self.running < self.workers


class Engine:
    def __init__(self, running: int) -> None:
        self.pool = Pool(running)
        self.sent: list[int] = []
        self._executor = ThreadPoolExecutor(1)

    def guesses(self) -> ThreadPoolExecutor:
        return self._executor

    def window_for(self, grammar: Any, audio: np.ndarray, rate: int) -> float:
        return 30.0

    def transcribe(
        self, audio: np.ndarray, rate: int, grammar: Any, *, window_sec: float | None = None
    ) -> Hypothesis:
        self.sent.append(len(audio))
        return Hypothesis("ticket status", 0.9, "whisper")


FRAMES = [np.zeros(160, np.int16)] * 10


def _started(running: int, *, eager: bool) -> bool:
    engine = Engine(running)
    early = EarlyDecode(engine, None, 8000)  # type: ignore[arg-type]
    early.start(FRAMES, wait=False, eager=eager)
    return early.take() is not None


def test_an_eager_start_needs_every_worker_free() -> None:
    assert _started(0, eager=True)
    assert not _started(1, eager=True)  # another caller's answer is being decoded


def test_the_usual_start_needs_one_worker_free() -> None:
    assert _started(1, eager=False)
    assert not _started(2, eager=False)


def test_a_usual_pause_starts_what_an_eager_one_could_not() -> None:
    engine = Engine(1)
    early = EarlyDecode(engine, None, 8000)  # type: ignore[arg-type]
    early.start(FRAMES, wait=False, eager=True)
    early.start(FRAMES, wait=False)  # 400 ms into the silence: one worker is free
    assert early.take() is not None and len(engine.sent) == 1
