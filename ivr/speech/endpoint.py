"""Endpointing on 20 ms frames: when the caller starts and stops speaking.

Speech activity comes from Silero VAD (``ivr.speech.vad.SileroStream``); webrtcvad
remains as a choice. Measured on human speech over a telephone line (``bench/vad.py``,
README): on a line with noise webrtcvad takes the noise for speech, starts every turn
before the caller speaks and ends most of them before the caller is done; Silero starts
none on noise, music or keypad tones and cuts no answer short, at about 4 ms of one core
per second of audio.

End of speech is a run of silence whose length depends on how complete the answer
already is (grammar-aware endpointing): a complete answer ends after a short pause, an
incomplete one (7 of 11 digits) waits longer so slow speakers are not cut off.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass
from typing import Final

import numpy as np
import webrtcvad

from ivr.errors import AudioError
from ivr.speech.audio import FRAME_MS, frame_samples
from ivr.speech.vad import SileroStream

START_FRAMES: Final = 3  # 60 ms of speech in the last START_WINDOW frames starts an utterance
START_WINDOW: Final = 5
# 600 ms fed to the recogniser from before the detected start: Silero starts a turn about
# 300-400 ms into the first word (bench/vad.py)
PREROLL_FRAMES: Final = 30
MIN_SPEECH_DBFS: Final = -50.0
_SPEECH_FLOOR: Final = 32768 * 10 ** (MIN_SPEECH_DBFS / 20)  # as a peak sample value
# Silero rests on a quiet line: after this many frames under MIN_SPEECH_DBFS (which are no
# speech whatever it says) it is not run until a louder frame comes, and then it first hears
# the last this many quiet frames (a word starts under the floor). It costs about 80 µs a
# frame, and a call is mostly quiet: the caller listening to a prompt, or thinking. Measured
# in bench/vad.py: the same turns start and end as when it hears every frame (README).
# 10 frames (200 ms) were too few: over the phone line a correction said after a read-back
# heard in silence was cut inside the sentence (README, *Endpointing*).
REST_AFTER_QUIET_FRAMES: Final = 25


class Detector(enum.StrEnum):
    SILERO = "silero"
    WEBRTC = "webrtcvad"


class Event(enum.StrEnum):
    NONE = "none"
    START = "start"
    END = "end"
    NO_INPUT = "no_input"
    MAX_SPEECH = "max_speech"


@dataclass(frozen=True)
class EndpointConfig:
    no_input_ms: int = 8000
    end_silence_ms: int = 750
    end_silence_complete_ms: int = 400
    max_speech_ms: int = 15000
    aggressiveness: int = 2  # webrtcvad's
    detector: Detector = Detector.SILERO


class Endpointer:
    def __init__(self, rate: int, config: EndpointConfig) -> None:
        if rate not in (8000, 16000, 32000, 48000):
            raise AudioError(f"expected a VAD rate of 8000/16000/32000/48000 Hz, got {rate}")
        self.rate = rate
        self.config = config
        self._webrtc = webrtcvad.Vad(config.aggressiveness)
        self._silero = SileroStream(rate) if config.detector is Detector.SILERO else None
        self._frame_len = frame_samples(rate)
        self._quiet = 0  # frames under the floor in a row
        # the last quiet frames Silero did not hear, heard before the next louder one
        self._resting: collections.deque[np.ndarray] = collections.deque(
            maxlen=REST_AFTER_QUIET_FRAMES
        )
        self._recent: collections.deque[bool] = collections.deque(maxlen=START_WINDOW)
        self.preroll: collections.deque[np.ndarray] = collections.deque(maxlen=PREROLL_FRAMES)
        self.in_speech = False
        self.frames = 0
        self.speech_frames = 0
        self.silence_frames = 0
        self.complete = False

    def is_speech(self, frame: np.ndarray) -> bool:
        if len(frame) != self._frame_len:
            raise AudioError(f"expected {self._frame_len} samples per frame, got {len(frame)}")
        loud = float(np.abs(frame.astype(np.int32)).max(initial=0)) > _SPEECH_FLOOR
        self._quiet = 0 if loud else self._quiet + 1
        if self._silero is not None:
            if self._quiet >= REST_AFTER_QUIET_FRAMES:
                self._resting.append(frame)
                return False
            for held in self._resting:  # the start of a word is under the floor: heard too
                self._silero.is_speech(held)
            self._resting.clear()
            voiced = self._silero.is_speech(frame)  # the model keeps its state between frames
            return loud and voiced
        return loud and self._webrtc.is_speech(frame.astype("<i2").tobytes(), self.rate)

    def push(self, frame: np.ndarray) -> Event:
        """Feed one frame; returns what happened at this frame."""
        self.frames += 1
        speech = self.is_speech(frame)
        if not self.in_speech:
            self._recent.append(speech)
            self.preroll.append(frame)
            if sum(self._recent) >= START_FRAMES:
                self.in_speech = True
                self.speech_frames = 0
                self.silence_frames = 0
                return Event.START
            if self.frames * FRAME_MS >= self.config.no_input_ms:
                return Event.NO_INPUT
            return Event.NONE
        self.speech_frames += 1
        self.silence_frames = 0 if speech else self.silence_frames + 1
        window = (
            self.config.end_silence_complete_ms if self.complete else self.config.end_silence_ms
        )
        if self.silence_frames * FRAME_MS >= window:
            return Event.END
        if self.speech_frames * FRAME_MS >= self.config.max_speech_ms:
            return Event.MAX_SPEECH
        return Event.NONE
