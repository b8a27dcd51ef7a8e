"""The scripted channel: plays a test call's turns whenever the IVR listens.

Time is virtual (one frame per ``receive``), so a call runs faster than real
time while every timeout still counts in 20 ms frames. Both sides are kept so
the whole conversation can be written as a stereo WAV (caller left, IVR right).
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from ivr.channels.base import Channel, ChannelEvent, Frame, HangUp, Key
from ivr.speech.audio import Audio, frame_samples, split_frames

LEAD_IN_MS: Final = 400
KEY_GAP_MS: Final = 300


class TurnKind(enum.StrEnum):
    AUDIO = "audio"
    DTMF = "dtmf"
    SILENCE = "silence"
    HANGUP = "hangup"


@dataclass(frozen=True)
class Turn:
    kind: TurnKind
    audio: Audio | None = None
    keys: str = ""
    where: str = ""  # "file: turn #n", for messages
    text: str = ""  # what the caller says, when known (synthesised turns)
    barge_in_ms: int | None = None  # speak this long after the prompt starts, over it


class ScriptedChannel(Channel):
    name = "scripted"
    realtime = False

    def __init__(
        self,
        turns: list[Turn],
        *,
        sample_rate: int = 16000,
        caller_id: str | None = None,
        dialed: str | None = None,
        line: Iterator[np.ndarray] | None = None,
        agent_answers: bool | None = None,
    ) -> None:
        """``line``: what the line carries while the caller says nothing (frames of noise,
        endless); None is digital silence."""
        self.sample_rate = sample_rate
        self.agent_answers = agent_answers  # what a transfer finds: None, no agents here
        self.caller_id = caller_id
        self.dialed = dialed
        self._turns = collections.deque(turns)
        self._pending: collections.deque[ChannelEvent] = collections.deque()
        self._frame_len = frame_samples(sample_rate)
        self._silence = np.zeros(self._frame_len, dtype=np.int16)
        self._line = line
        self.clock = 0
        self._playing_from = 0
        self._playing_until = 0
        self._caller: list[np.ndarray] = []
        self._ivr: list[tuple[int, np.ndarray]] = []
        self.turns_used = 0
        self.exhausted = False
        self.hung_up = False
        self._early = False
        self._private = False
        self.private_spans: list[tuple[int, int]] = []  # frames the recording holds silent

    # --- Channel -------------------------------------------------------------------------
    def receive(self) -> ChannelEvent:
        if self._pending:
            event = self._pending.popleft()
            if isinstance(event, HangUp):
                self.hung_up = True
                self._truncate_playback()
                return event
            if isinstance(event, Key):
                return event
        else:
            event = self._quiet()
        self.clock += 1
        assert isinstance(event, Frame)
        self._caller.append(self._silence if self._private else event.samples)
        return event

    def _quiet(self) -> Frame:
        """A frame of the line with the caller silent."""
        return Frame(self._silence if self._line is None else next(self._line))

    def _quiet_frames(self, ms: int) -> list[Frame]:
        return [self._quiet() for _ in range(ms // 20)]

    def private(self, on: bool) -> None:
        if on and not self._private:
            self.private_spans.append((self.clock, self.clock))
        elif not on and self._private:
            start, _ = self.private_spans[-1]
            self.private_spans[-1] = (start, self.clock)
        self._private = on

    def play(self, audio: Audio) -> None:
        if audio.rate != self.sample_rate:
            audio = audio.to_rate(self.sample_rate)
        self._truncate_playback()
        self._ivr.append((self.clock, audio.samples))
        self._playing_from = self.clock
        self._playing_until = self.clock + -(-len(audio.samples) // self._frame_len)

    def stop_playback(self) -> None:
        self._truncate_playback()
        self._playing_until = self.clock

    def is_playing(self) -> bool:
        return self.clock < self._playing_until

    def asking(self, ask: str) -> None:
        upcoming = self._turns[0] if self._turns else None
        if upcoming is not None and upcoming.barge_in_ms is not None and not self._early:
            # the caller answers over this ask's prompt: start the turn with the prompt
            self._pending = collections.deque(e for e in self._pending if isinstance(e, HangUp))
            self._early = True
            self._start_turn(lead_in_ms=upcoming.barge_in_ms)

    def listening(self, ask: str) -> None:
        if self._early:  # this ask's turn already started during the prompt
            self._early = False
            return
        self._pending = collections.deque(e for e in self._pending if isinstance(e, HangUp))
        self._start_turn(lead_in_ms=LEAD_IN_MS)

    def _start_turn(self, *, lead_in_ms: int) -> None:
        if not self._turns:
            self.exhausted = True
            self._pending.append(HangUp("script ended"))
            return
        turn = self._turns.popleft()
        self.turns_used += 1
        if turn.kind is TurnKind.AUDIO and turn.audio is not None:
            self._pending.extend(self._quiet_frames(lead_in_ms))
            audio = turn.audio.to_rate(self.sample_rate)
            self._pending.extend(Frame(f) for f in split_frames(audio.samples, self.sample_rate))
        elif turn.kind is TurnKind.DTMF:
            self._pending.extend(self._quiet_frames(lead_in_ms))
            for key in turn.keys:
                self._pending.extend(self._quiet_frames(KEY_GAP_MS))
                self._pending.append(Key(key))
        elif turn.kind is TurnKind.HANGUP:
            self._pending.extend(self._quiet_frames(KEY_GAP_MS))
            self._pending.append(HangUp())

    def connect_agent(self) -> bool | None:
        """As the test call says: an agent answers (True), all are busy (False), or none."""
        return self.agent_answers

    def hang_up(self) -> None:
        self._truncate_playback()

    # --- recording -----------------------------------------------------------------------
    def _truncate_playback(self) -> None:
        if self._ivr and self.clock < self._playing_until:
            start, samples = self._ivr[-1]
            keep = (self.clock - start) * self._frame_len
            self._ivr[-1] = (start, samples[: max(0, keep)])

    def ivr_frames_total(self) -> int:
        return max(self.clock, self._playing_until)

    def stereo(self) -> np.ndarray:
        """The conversation so far as an N x 2 int16 array: caller left, IVR right."""
        total = self.ivr_frames_total() * self._frame_len
        for start, samples in self._ivr:
            total = max(total, start * self._frame_len + len(samples))
        out = np.zeros((total, 2), dtype=np.int16)
        if self._caller:
            caller = np.concatenate(self._caller)
            out[: len(caller), 0] = caller
        for start, samples in self._ivr:
            at = start * self._frame_len
            out[at : at + len(samples), 1] = samples
        return out
