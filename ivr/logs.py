"""How ivr's processes log: the command on stderr, and the processes it starts (recognition
workers, the voice, parallel test calls), whose lines interleave with its own and so name
the process."""

from __future__ import annotations

import logging
import sys
from typing import Final

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WORKER_FORMAT: Final = "%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s"


def log_as_command(level: int) -> None:
    """The command's logging, on stderr (stdout is for what the command answers)."""
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    _quiet_libraries(level)


def log_as_worker(level: int) -> None:
    """In a spawned process, which starts with no logging set up (its warnings came out
    bare): log at the level of the process that started it, each line naming the process."""
    logging.basicConfig(level=level, stream=sys.stderr, format=WORKER_FORMAT)
    _quiet_libraries(level)


def _quiet_libraries(level: int) -> None:
    # transitions logs every state change at INFO
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
