"""Work off the call threads: worker processes that hold a model (or a library) once.

A call sends its work (an utterance to decode, a text to synthesise) and gets the
result back; the heavy work runs in another process, so it neither holds the
interpreter lock of the process that carries the calls nor takes that process down
when it crashes. A worker that dies mid-task (killed, out of memory, a segfault in a C
library) is replaced and the task sent again: the caller only hears the reply a
little later. Once a task's result has gone, the worker gives the memory the task freed
back to the system.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, TypeVar

from ivr.errors import EngineError
from ivr.logs import log_as_worker

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRIES: Final = 2
RESULT_TIMEOUT_SEC: Final = 120.0
# a worker gives its freed memory back this long after a task, once the result has gone
GIVE_BACK_AFTER_SEC: Final = 0.02


def end_with_parent() -> None:
    """In a worker: exit when the process that started it ends, even by ``kill -9``.

    A worker waits on its call queue, and holds both ends of that queue's pipe: a parent
    that is killed never closes it, so the worker, and the model it holds, would stay
    (found after a crash test: workers of killed servers still alive, 230 MB each).
    """
    import multiprocessing.connection

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)  # nothing of the worker's is worth keeping without its calls

    threading.Thread(target=watch, daemon=True, name="ivr-parent-watch").start()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, from the symbols the process has loaded (None elsewhere)."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


def give_back_memory() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``); False where
    the C library has no such call.

    A decode allocates and frees tens of megabytes of buffers. glibc keeps what is freed
    inside its heap for the next allocation, so without this a Whisper worker (tiny.en)
    held 237 MB between utterances, against 185 MB with what they freed given back, at 3
    to 7 ms a time, done once the result has gone (README, *SIP under load*). A decode's
    peak is not lowered: it needs its working memory while it runs.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


_task_done = threading.Event()  # in a worker: a task ended, its memory to give back


def _give_back_after_tasks() -> None:
    """In a worker: after each task, once its result has gone, give the memory it freed
    back, so that no caller waits on it."""
    while True:
        _task_done.wait()
        time.sleep(GIVE_BACK_AFTER_SEC)
        _task_done.clear()
        give_back_memory()


def _task(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker, then the memory it freed given back."""
    try:
        return fn(*args)
    finally:
        _task_done.set()


_worker_nice = 0  # how much nicer than this process the workers it starts run


def set_worker_nice(nice: int) -> None:
    """Worker processes started from now on run ``nice`` nicer than this one (``ivr serve``:
    under load its media clock and dialogs come first, recognition takes what is left)."""
    global _worker_nice
    _worker_nice = nice


def worker_nice() -> int:
    return _worker_nice


def start_worker(what: str, log_level: int, nice: int = 0) -> None:
    """In a worker: named for its work, ``nice`` nicer than the process that started it,
    logging as that process does, ending with it, and giving back what its tasks free."""
    multiprocessing.current_process().name = f"{what} worker {os.getpid()}"
    if nice:
        os.nice(nice)
    log_as_worker(log_level)
    end_with_parent()
    threading.Thread(target=_give_back_after_tasks, daemon=True, name="ivr-give-back").start()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)


class WorkerPool:
    """``workers`` processes (``0``: run in the calling process, one at a time) that do
    ``what`` (named in what the pool logs and raises)."""

    def __init__(self, workers: int | None = None, *, what: str) -> None:
        self.what = what
        self.workers = default_workers() if workers is None else max(0, workers)
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._inline = threading.Lock()
        self.replaced = 0  # how many times dead workers were replaced
        self._running = 0  # tasks sent and not yet back

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn: a fresh interpreter, never a fork of a process that runs threads
                ctx = multiprocessing.get_context("spawn")
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=ctx,
                    initializer=start_worker,
                    initargs=(self.what, logging.getLogger().getEffectiveLevel(), _worker_nice),
                )
            return self._executor

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                log.warning("a %s worker died; starting new workers", self.what)
                self._executor = None
                self.replaced += 1
        broken.shutdown(wait=False, cancel_futures=True)

    def idle(self) -> bool:
        """A worker is free: work sent now starts at once (and delays nobody's)."""
        with self._lock:
            return self._running < max(1, self.workers)

    def busy(self) -> int:
        """How many tasks the workers are doing (or about to) now."""
        with self._lock:
            return self._running

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker (``fn`` and its arguments must pickle)."""
        with self._lock:
            self._running += 1
        try:
            return self._run(fn, *args)
        finally:
            with self._lock:
                self._running -= 1

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.workers == 0:
            with self._inline:
                return fn(*args)
        last: BaseException | None = None
        for _attempt in range(RETRIES + 1):
            pool = self._pool()
            try:
                return pool.submit(_task, fn, *args).result(timeout=RESULT_TIMEOUT_SEC)
            except BrokenProcessPool as exc:
                last = exc
                self._replace(pool)
            except concurrent.futures.TimeoutError as exc:
                raise EngineError(f"{self.what} took over {RESULT_TIMEOUT_SEC:.0f} s") from exc
        raise EngineError(f"{self.what} workers keep dying: {last}")

    def warm(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start every worker and run ``fn`` in each (e.g. load a model) before calls come."""
        if self.workers == 0:
            fn(*args)
            return
        pool = self._pool()
        for fut in [pool.submit(_task, fn, *args) for _ in range(self.workers)]:
            fut.result(timeout=RESULT_TIMEOUT_SEC)

    def worker_pids(self) -> list[int]:
        with self._lock:
            executor = self._executor
        if executor is None:
            return []
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.pid is not None]

    def close(self) -> None:
        """Stop the workers now. Work they are still doing (a model loading while the server
        is told to stop) is dropped, not waited for: a stop must not hang on it."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
        executor.shutdown(wait=True)
