"""The channel interface: how audio, keys and hang-ups reach the dialog engine.

A channel delivers a stream of events at its own clock: one :class:`Frame` of
20 ms every 20 ms (real channels) or as fast as asked (the scripted channel),
:class:`Key` presses and a final :class:`HangUp`. The dialog engine measures
every timeout in frames received, so timeouts behave the same on every channel.

A live channel stamps each frame and key with the moment it arrived
(``time.perf_counter()``), so that a reply's latency counts from when the caller's
turn ended on the line, including any time the event waited for the call's thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ivr.speech.audio import Audio


@dataclass(frozen=True)
class Frame:
    samples: np.ndarray
    at: float = 0.0  # when it arrived (perf_counter); 0: a channel without a clock of its own


@dataclass(frozen=True)
class Key:
    key: str
    at: float = 0.0  # as for Frame


@dataclass(frozen=True)
class HangUp:
    reason: str = "caller"


ChannelEvent = Frame | Key | HangUp


class Channel(ABC):
    sample_rate: int
    caller_id: str | None = None
    dialed: str | None = None
    name: str = "channel"
    # frames come at the pace of speech; a simulated call's come as fast as they are taken
    realtime: bool = True

    @abstractmethod
    def receive(self) -> ChannelEvent:
        """The next event; blocks at most one frame time on real channels."""

    @abstractmethod
    def play(self, audio: Audio) -> None:
        """Start playing (non-blocking); replaces anything still playing."""

    @abstractmethod
    def stop_playback(self) -> None:
        """Stop the prompt now (barge-in)."""

    @abstractmethod
    def is_playing(self) -> bool:
        """True while prompt audio is still going out."""

    def asking(self, ask: str) -> None:  # noqa: B027 - optional hint
        """The IVR is about to play the prompt of ``ask`` (the caller may answer over it)."""

    def listening(self, ask: str) -> None:  # noqa: B027 - optional hint
        """The IVR now listens for the answer to ``ask``."""

    def private(self, on: bool) -> None:  # noqa: B027 - optional hint
        """From ``private(True)`` until ``private(False)`` a code is being spoken or keyed:
        nothing of the caller's audio may be kept. A recording holds digital silence of the
        same length there (the timeline stays true); the dialog still hears every frame."""

    def connect_agent(self) -> bool | None:
        """Hand the caller to a live agent now: True when connected, False when no agent
        answered (busy, no answer), None when this channel has no live agents (the case
        waits in the agent queue)."""
        return None

    def hang_up(self) -> None:  # noqa: B027 - optional
        """The IVR ends the call."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release resources."""
