"""Recording a real call as a test call (`ivr serve --record DIR`): the same format QA replays.

A tape wraps the call's channel. Whatever the caller sends from the moment the IVR starts
listening for an ask until that turn is recorded is the ask's turn; keys typed ahead (over
a prompt) go to the next turn. Keys become a ``dtmf`` turn, speech is written to
``turns/NN.wav`` (trimmed to the voice) and becomes an ``audio`` turn, nothing becomes
``silence``, a hang-up ``hangup``.

While a code is spoken or keyed (the channel's private span) no audio is kept: a spoken
answer there becomes ``silence`` marked ``private: speech`` (``ivr qa promote`` has the
synthetic caller say a stand-in for it); keys are not audio and are kept like any others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from ivr.channels.base import Channel, ChannelEvent, Frame, HangUp, Key
from ivr.speech.audio import Audio, write_wav

if TYPE_CHECKING:
    from ivr.session import CallResult

VOICE_RMS = 300.0
MARGIN_FRAMES = 15  # 300 ms kept around the voice
MIN_VOICE_FRAMES = 5  # under 100 ms of voice: a click, not an answer


@dataclass
class _Turn:
    ask: str
    frames: list[np.ndarray] = field(default_factory=list)
    keys: str = ""
    hangup: bool = False
    private: bool = False  # a code's ask: no audio kept
    voiced: int = 0  # frames with voice in a private turn (counted, not kept)


class CallTape(Channel):
    """A channel that passes everything through and keeps each turn."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.name = inner.name
        self.sample_rate = inner.sample_rate
        self.caller_id = inner.caller_id
        self.dialed = inner.dialed
        self.turns: list[_Turn] = []
        self._current: _Turn | None = None
        self._ahead = ""  # keys typed while no turn was open
        self._spill = ""  # keys a turn took that the dialog kept for the asks after it
        self._private = False

    # recording
    def receive(self) -> ChannelEvent:
        event = self.inner.receive()
        turn = self._current
        if turn is not None:
            if isinstance(event, Frame) and turn.private:
                turn.voiced += int(_rms(event.samples) > VOICE_RMS)
            elif isinstance(event, Frame):
                turn.frames.append(event.samples)
            elif isinstance(event, Key):
                turn.keys += event.key
            elif isinstance(event, HangUp):
                turn.hangup = True
        elif isinstance(event, Key):
            self._ahead += event.key
        return event

    def observe(self, kind: str, data: dict[str, Any]) -> None:
        """The call's observer: a recorded turn closes the tape's turn.

        Keys typed ahead at a read-back ("1", then the next asks' keys, faster than the IVR
        asked) arrive in the read-back's turn; the dialog answers it with the first key and
        keeps the rest for the asks that follow. The turn records say which keys each ask
        took, so the tape gives each ask its own keys, as if typed during its prompt.
        """
        if kind != "turn":
            return
        turn, self._current = self._current, None
        heard = str(data.get("heard") or "")
        if turn is None or data.get("mode") != "dtmf" or not heard:
            return
        if turn.keys.startswith(heard) and turn.keys[len(heard) :].strip("#"):
            self._spill = turn.keys[len(heard) :] + self._spill
            turn.keys = heard
        elif not turn.keys and self._spill.startswith(heard):
            turn.keys, self._spill = heard, self._spill[len(heard) :]

    def asking(self, ask: str) -> None:
        self.inner.asking(ask)

    def private(self, on: bool) -> None:
        self._private = on
        self.inner.private(on)

    def listening(self, ask: str) -> None:
        self._current = _Turn(ask, keys=self._ahead, private=self._private)
        self._ahead = ""
        self.turns.append(self._current)
        self.inner.listening(ask)

    # passing through
    def play(self, audio: Audio) -> None:
        self.inner.play(audio)

    def stop_playback(self) -> None:
        self.inner.stop_playback()

    def is_playing(self) -> bool:
        return self.inner.is_playing()

    def hang_up(self) -> None:
        self.inner.hang_up()

    def close(self) -> None:
        self.inner.close()

    def connect_agent(self) -> bool | None:
        return self.inner.connect_agent()

    # saving
    def save(self, folder: Path, result: CallResult) -> Path:
        """Write ``call.yaml`` and the turns' audio; the call's outcome becomes its ``expect``."""
        folder.mkdir(parents=True, exist_ok=True)
        turns: list[dict[str, Any]] = []
        for n, turn in enumerate(self.turns, 1):
            if turn.keys:
                turns.append({"dtmf": turn.keys, "ask": turn.ask})
                continue
            voice = _voiced(turn.frames)
            if turn.private and turn.voiced >= MIN_VOICE_FRAMES:
                turns.append({"silence": True, "ask": turn.ask, "private": "speech"})
            elif voice is not None:
                name = f"turns/{n:02d}-{turn.ask}.wav"
                write_wav(folder / name, voice, self.sample_rate)
                turns.append({"audio": name, "ask": turn.ask})
            elif turn.hangup:
                turns.append({"hangup": True, "ask": turn.ask})
            else:
                turns.append({"silence": True, "ask": turn.ask})
        expect: dict[str, Any] = {"outcome": str(result.outcome)}
        if result.transfer_reason:
            expect["transfer_reason"] = result.transfer_reason
        document = {
            "name": f"recorded call {result.call_id}",
            "locale": _locale_of(result),
            "caller_id": self.caller_id,
            "dialed": self.dialed,
            "turns": turns,
            "expect": expect,
        }
        path = folder / "call.yaml"
        path.write_text(
            "# recorded by ivr serve --record; replay with `ivr qa run`\n"
            + yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
        return path


def _rms(frame: np.ndarray) -> float:
    return float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) if len(frame) else 0.0


def _voiced(frames: list[np.ndarray]) -> np.ndarray | None:
    if not frames:
        return None
    rms = np.array([_rms(f) for f in frames])
    loud = np.nonzero(rms > VOICE_RMS)[0]
    if len(loud) < MIN_VOICE_FRAMES:  # under 100 ms of voice: a click, not an answer
        return None
    first = max(0, int(loud[0]) - MARGIN_FRAMES)
    last = min(len(frames), int(loud[-1]) + 1 + MARGIN_FRAMES)
    return np.concatenate(frames[first:last])


def _locale_of(result: CallResult) -> str:
    return getattr(result, "locale", None) or "en-US"
