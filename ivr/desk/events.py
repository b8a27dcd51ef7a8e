"""One follower of the store's ``desk_events`` per desk process, fanned out to every open
event stream (so a hundred open browsers cost one query per tick, not a hundred)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from starlette.concurrency import run_in_threadpool

from ivr.agents.cases import CaseDesk

log = logging.getLogger(__name__)

POLL_S: Final = 0.1
QUEUE_MAX: Final = 1000  # a stream this far behind is closed; the browser reconnects
REPLAY_MAX: Final = 1000  # a stream resumes with at most this many of the newest missed events


class EventFeed:
    def __init__(self, cases: CaseDesk, *, poll_s: float = POLL_S) -> None:
        self.cases = cases
        self.poll_s = poll_s
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_MAX)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())
        return queue

    def missed(self, after: int) -> list[dict[str, Any]]:
        """The events after ``after`` (a page's or a dropped stream's last one), oldest first:
        what a browser missed while its page loaded or its stream reconnected."""
        after = max(after, self.cases.last_event() - REPLAY_MAX)
        missed: list[dict[str, Any]] = []
        while batch := self.cases.events_after(after):
            missed += [_public(e) for e in batch]
            after = int(batch[-1]["id"])
        return missed

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    def end_streams(self) -> None:
        """Close every open event stream (the server is stopping; browsers reconnect)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def _follow(self) -> None:
        last = await run_in_threadpool(self.cases.last_event)
        while True:
            try:
                events = await run_in_threadpool(self.cases.events_after, last)
            except Exception:  # the database is busy or gone for a moment: try again
                log.exception("reading desk events failed")
                events = []
            for event in events:
                last = int(event["id"])
                data = _public(event)
                for queue in list(self._subscribers):
                    try:
                        queue.put_nowait(data)
                    except asyncio.QueueFull:
                        self._subscribers.discard(queue)
                        queue.get_nowait()
                        queue.put_nowait(None)  # ends that stream
            await asyncio.sleep(self.poll_s)


def _public(event: dict[str, Any]) -> dict[str, Any]:
    """What a browser is told of a desk event: which case changed how, and for whom."""
    return {k: event[k] for k in ("id", "kind", "queue_id", "agent_id")}
