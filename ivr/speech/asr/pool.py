"""Recognition off the call threads: worker processes that hold each model once.

A call sends a finished utterance (16 kHz float audio) and gets the decoder's
result back (:class:`ivr.speech.processes.WorkerPool`): no call's recognition holds
the interpreter lock of the process that carries the calls, and a worker that dies
mid-utterance is replaced and the utterance sent again.
"""

from __future__ import annotations

import atexit
import threading

from ivr.speech.processes import WorkerPool


class RecognitionPool(WorkerPool):
    """``workers`` recognition processes (``0``: decode in the calling process, one at a time)."""

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers, what="recognition")


_shared: dict[int | None, RecognitionPool] = {}
_shared_lock = threading.Lock()


def shared_pool(workers: int | None = None) -> RecognitionPool:
    """The process's pool of ``workers`` processes: every call and engine shares it."""
    with _shared_lock:
        if workers not in _shared:
            _shared[workers] = RecognitionPool(workers)
        return _shared[workers]


@atexit.register
def close_shared_pools() -> None:
    """Stop the process's recognition workers (at exit; a process that ends through
    multiprocessing's exit, where atexit does not run, must call it itself)."""
    for pool in list(_shared.values()):
        pool.close()
