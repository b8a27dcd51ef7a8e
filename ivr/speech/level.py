"""Speech level: the active speech level (ITU-T P.56, method B) and normalisation to it.

Every prompt a caller hears is brought to the same active speech level, whichever
voice made it, so a read-back assembled from segments and a sentence synthesised a
moment ago sound equally loud on the line. Levels are in dBov: 0 dBov is the
root-mean-square of a full-scale square wave (32768 for 16-bit samples).

The measure follows P.56 method B: a two-stage envelope with a 30 ms time
constant, a 200 ms hang-over, activity counted against thresholds one octave
(6 dB) apart, and the level taken where the active level is 15.9 dB above the
threshold. The envelope runs on 1 ms blocks, which is plenty for a 30 ms time
constant and keeps the loop short.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

FULL_SCALE: Final = 32768.0
TARGET_DBOV: Final = -26.0
MARGIN_DB: Final = 15.9
TIME_CONSTANT_SEC: Final = 0.03
HANGOVER_SEC: Final = 0.2
BLOCK_MS: Final = 1
PEAK_LIMIT_DBFS: Final = -1.0  # no sample of a normalised prompt goes above this
KNEE_DBFS: Final = -4.0  # the limiter leaves everything below this untouched
SILENT_DBOV: Final = -100.0


def active_level_dbov(samples: np.ndarray, rate: int) -> float:
    """The active speech level of int16 (or float in int16 units) samples, in dBov."""
    x = np.asarray(samples, dtype=np.float64)
    block = max(1, rate * BLOCK_MS // 1000)
    n = len(x) // block
    if n == 0:
        return SILENT_DBOV
    blocks = x[: n * block].reshape(n, block)
    mean_abs = np.abs(blocks).mean(axis=1)
    energy = (blocks**2).sum(axis=1)
    g = math.exp(-BLOCK_MS / 1000 / TIME_CONSTANT_SEC)
    envelope = np.empty(n)
    p = q = 0.0
    for i, value in enumerate(mean_abs.tolist()):  # two-stage exponential envelope
        p = g * p + (1 - g) * value
        q = g * q + (1 - g) * p
        envelope[i] = q
    hang = max(1, int(HANGOVER_SEC * 1000 / BLOCK_MS))
    padded = np.concatenate([np.zeros(hang - 1), envelope])
    held = np.lib.stride_tricks.sliding_window_view(padded, hang).max(axis=1)
    thresholds = 2.0 ** np.arange(16)  # one octave apart, 1 ... 32768
    levels: list[float] = []
    for c in thresholds:
        active = held >= c
        count = int(active.sum()) * block
        if count == 0:
            levels.append(float("nan"))
            continue
        levels.append(10 * math.log10(max(float(energy[active].sum()), 1e-12) / count))
    prev: tuple[float, float] | None = None
    for c, level in zip(thresholds, levels, strict=True):
        if math.isnan(level):
            break
        diff = level - 20 * math.log10(c)
        if diff <= MARGIN_DB:
            if prev is None:
                return level - 20 * math.log10(FULL_SCALE)
            prev_level, prev_diff = prev
            share = (prev_diff - MARGIN_DB) / (prev_diff - diff)  # linear in dB between the two
            return prev_level + share * (level - prev_level) - 20 * math.log10(FULL_SCALE)
        prev = (level, diff)
    if prev is None:
        return SILENT_DBOV
    return prev[0] - 20 * math.log10(FULL_SCALE)


def peak_dbfs(samples: np.ndarray) -> float:
    peak = float(np.abs(np.asarray(samples, dtype=np.float64)).max()) if len(samples) else 0.0
    return 20 * math.log10(peak / FULL_SCALE) if peak > 0 else SILENT_DBOV


def _limit(x: np.ndarray) -> np.ndarray:
    """A soft limiter on the few peaks above the knee: nothing reaches the peak limit."""
    knee = FULL_SCALE * 10 ** (KNEE_DBFS / 20)
    ceiling = FULL_SCALE * 10 ** (PEAK_LIMIT_DBFS / 20)
    mag = np.abs(x)
    over = mag > knee
    if not over.any():
        return x
    room = ceiling - knee
    out = x.copy()
    out[over] = np.sign(x[over]) * (knee + room * np.tanh((mag[over] - knee) / room))
    return out


def normalise(samples: np.ndarray, rate: int, *, target_dbov: float = TARGET_DBOV) -> np.ndarray:
    """int16 speech brought to ``target_dbov`` active level, peaks softly limited (no clipping)."""
    if len(samples) == 0:
        return np.asarray(samples, dtype=np.int16)
    level = active_level_dbov(samples, rate)
    if level <= SILENT_DBOV:
        return np.asarray(samples, dtype=np.int16)
    gain = 10 ** ((target_dbov - level) / 20)
    scaled = _limit(np.asarray(samples, dtype=np.float64) * gain)
    return np.round(scaled).astype(np.int16)


def frame_levels(samples: np.ndarray, frame: int) -> np.ndarray:
    """The RMS of each whole run of ``frame`` samples (a part frame at the end is left out)."""
    x = np.asarray(samples, dtype=np.float64)
    n = len(x) // frame
    return np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))


def spoken_seconds(samples: np.ndarray, rate: int, *, floor_db: float = -40.0) -> float:
    """Seconds from the first to the last sound louder than ``floor_db`` below the peak."""
    x = np.abs(np.asarray(samples, dtype=np.float64))
    if len(x) == 0 or x.max() == 0:
        return 0.0
    loud = np.nonzero(x > x.max() * 10 ** (floor_db / 20))[0]
    return float(loud[-1] - loud[0] + 1) / rate


def speaking_rate_wpm(samples: np.ndarray, rate: int, words: int) -> float:
    """Words per minute over the audio, pauses inside it included, silent edges not."""
    seconds = spoken_seconds(samples, rate)
    return words / seconds * 60 if seconds > 0 else 0.0
