"""In-band DTMF: keypad tones found inside the audio (ITU-T Q.24 style).

Each 40 ms window's power at the eight keypad frequencies (what a bank of Goertzel filters
gives) is taken by two matrix products over a cached basis.

Used on telephone calls whose peer sends no RFC 4733 telephone-events. A key counts once a
valid tone pair has lasted 40 ms, and again only after a pause.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np

LOW: Final = (697.0, 770.0, 852.0, 941.0)
HIGH: Final = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS: Final = ("123A", "456B", "789C", "*0#D")
MIN_LEVEL: Final = 400.0  # RMS of the tone pair; far below a spoken word, above line noise
MAX_TWIST_DB: Final = 8.0
MIN_PURITY: Final = 0.45  # the two tones' share of the window's energy (a pure pair: 0.67)
WINDOW_FRAMES: Final = 2  # analyse 40 ms: neighbouring keypad tones are only 73 Hz apart


@functools.cache
def _basis(n: int, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Hann window of ``n`` samples and the cosines and sines of every keypad frequency
    (low group, then high) over it: each window is analysed by two matrix products."""
    t = np.arange(n)
    phase = 2 * np.pi * np.outer(np.array(LOW + HIGH), t) / rate
    return np.hanning(n), np.cos(phase), np.sin(phase)


class ToneDetector:
    """Feed 20 ms frames; ``push`` returns a key when a new tone is recognised."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._candidate: str | None = None
        self._run = 0
        self._reported: str | None = None
        self._quiet = 0
        self._previous: np.ndarray | None = None

    def classify(self, frame: np.ndarray) -> str | None:
        x = frame.astype(np.float64)
        energy = float(x @ x) / len(x)  # the mean square: 50 times a second a call
        if energy < MIN_LEVEL**2 / 2:
            return None
        window, cosines, sines = _basis(len(x), self.rate)
        x = x * window
        power = ((cosines @ x) ** 2 + (sines @ x) ** 2) * 2 / (len(x) ** 2)  # of each sine
        low, high = power[: len(LOW)], power[len(LOW) :]
        li, hi = int(np.argmax(low)), int(np.argmax(high))
        pl, ph = low[li], high[hi]
        if pl <= 0 or ph <= 0:
            return None
        if abs(10 * np.log10(pl / ph)) > MAX_TWIST_DB:
            return None
        windowed = float(x @ x) / len(x)
        if pl + ph < MIN_PURITY * windowed:
            return None
        if sorted(low)[-2] > pl / 6 or sorted(high)[-2] > ph / 6:
            return None  # a second strong tone in a group: speech or music, not a key
        return KEYS[li][hi]

    def push(self, frame: np.ndarray) -> str | None:
        window = frame if self._previous is None else np.concatenate([self._previous, frame])
        self._previous = frame
        key = self.classify(window) if len(window) > len(frame) else None
        if key is None:
            self._quiet += 1
            if self._quiet >= 2:
                self._reported = None
            self._candidate, self._run = None, 0
            return None
        self._quiet = 0
        if key == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run = key, 1
        if self._run >= 2 and key != self._reported:
            self._reported = key
            return key
        return None


def tone(key: str, rate: int, ms: int = 100, level: float = 6000.0) -> np.ndarray:
    """The keypad tone of ``key`` (for tests and for sending in-band)."""
    for row, keys in enumerate(KEYS):
        if key in keys:
            col = keys.index(key)
            t = np.arange(rate * ms // 1000) / rate
            wave = np.sin(2 * np.pi * LOW[row] * t) + np.sin(2 * np.pi * HIGH[col] * t)
            return (wave * level / 2).astype(np.int16)
    raise ValueError(f"no keypad tone for {key!r}")


def keys_in(samples: np.ndarray, rate: int) -> str:
    """The keypad tones in a whole recording (int16 at ``rate``), in order."""
    detector = ToneDetector(rate)
    frame = rate // 50  # 20 ms, as a call's frames come
    found = (detector.push(samples[i : i + frame]) for i in range(0, len(samples), frame))
    return "".join(key for key in found if key is not None)
