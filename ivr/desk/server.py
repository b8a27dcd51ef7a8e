"""Running the desk: uvicorn with the desk's event streams ended first on SIGTERM/SIGINT,
so open browsers do not hold the shutdown until its timeout."""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType
from typing import Final

import uvicorn

from ivr.desk.app import Desk, create_app
from ivr.services.store import Store

GRACE_S: Final = 2


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, desk: Desk) -> None:
        super().__init__(config)
        self.desk = desk

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        with contextlib.suppress(RuntimeError):  # no loop running: nothing is streaming
            asyncio.get_running_loop().call_soon(self.desk.feed.end_streams)


def run(store: Store, *, host: str, port: int, secure_cookies: bool) -> None:
    desk = Desk(store, secure_cookies=secure_cookies)
    config = uvicorn.Config(
        create_app(desk),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACE_S,
    )
    _Server(config, desk).run()
