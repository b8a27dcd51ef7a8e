"""A reply's latency counts from when the caller's turn ended on the line.

A live channel stamps each frame and key with the moment it arrived. When a busy machine
leaves them waiting for the call's thread, the caller waits too: the latency recorded for
the reply must include that wait, not start when the dialog got round to the last key.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ivr.channels.base import ChannelEvent, Frame, Key
from ivr.channels.scripted import ScriptedChannel, Turn, TurnKind
from ivr.dialog.turns import AskKind
from ivr.services.store import Store
from tests.helpers import en_us_dialog

BEHIND_SEC = 5.0  # far longer than a cached prompt's reply takes on the busiest machine


class BehindTheLine(ScriptedChannel):
    """Every frame and key reached the line ``BEHIND_SEC`` before the dialog takes it."""

    def receive(self) -> ChannelEvent:
        event = super().receive()
        if isinstance(event, Frame | Key):
            return dataclasses.replace(event, at=time.perf_counter() - BEHIND_SEC)
        return event


def _keyed_ticket(settings, tmp_path: Path, channel: ScriptedChannel) -> float:  # type: ignore[no-untyped-def]
    """The reply's latency after a ticket number keyed on ``channel``, in ms."""
    store = Store(tmp_path / f"{type(channel).__name__}.sqlite3")
    dialog = en_us_dialog(settings, store, channel, None)
    try:
        answer = dialog.ask("ticket_number", grammar="ticket_number", kind=AskKind.DIGITS)
        assert answer.digits == "20261120"
        dialog.say("goodbye")  # the reply: its first audio ends the latency
        (latency,) = dialog.latencies_ms
        (turn,) = [t for t in dialog.recorder.turns if t.ask == "ticket_number"]
        assert turn.latency_ms == latency  # what the call record keeps
        return latency
    finally:
        store.close()


def test_a_reply_counts_from_when_the_turn_ended_on_the_line(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keys = [Turn(TurnKind.DTMF, keys="20261120")]
    behind = _keyed_ticket(settings, tmp_path, BehindTheLine(keys))
    assert behind >= BEHIND_SEC * 1000
    # a channel without a clock of its own (a simulated call): from when the dialog took it
    assert _keyed_ticket(settings, tmp_path, ScriptedChannel(keys)) < BEHIND_SEC * 1000
