"""Caller conditions for test calls: the same call as a clean voice, on a phone line, slow in noise.

A test call's caller audio (``say:`` turns, synthesised, and recorded ``audio:``
turns) is rendered in one condition:

* ``clean``: the synthetic caller voice as it is (the default);
* ``phone``: a female voice through an 8 kHz G.711 µ-law line, heard on an 8 kHz channel;
* ``noisy``: a slow, low-pitched voice with line noise at 15 dB SNR, on the line for the
  whole call: under the caller's words and in every pause, before and after them.

Noise is drawn from generators seeded by the turn's text (and the call's name for the
noise between turns), so a condition renders the same audio on every run (a deterministic
system must give the same result twice).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from ivr.speech.audio import Audio, rms_dbfs, telephone
from ivr.speech.level import frame_levels


class Condition(enum.StrEnum):
    CLEAN = "clean"
    PHONE = "phone"
    NOISY = "noisy"


@dataclass(frozen=True)
class Rendering:
    voice_variant: str | None  # espeak-ng variant after "+", None: the default caller voice
    rate_wpm: int | None  # None: the default caller rate
    pitch: int | None  # espeak-ng pitch 0-99, None: the voice's own
    phone_line: bool
    snr_db: float | None
    channel_rate: int | None  # the channel's rate this condition implies (None: as asked)


RENDERINGS: Final[dict[Condition, Rendering]] = {
    Condition.CLEAN: Rendering(None, None, None, False, None, None),
    Condition.PHONE: Rendering("f2", 140, None, True, None, 8000),
    Condition.NOISY: Rendering("m3", 105, 25, False, 15.0, None),
}


# The active speech level of the synthetic caller voices (measured: -18 to -23 dBFS): the
# reference for the noise between turns, when there are no words to measure it on.
CALLER_SPEECH_DBFS: Final = -21.0


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _line_noise(n: int, rate: int, rng: np.random.Generator, start: int = 0) -> np.ndarray:
    """``n`` samples of line noise (pink-ish hiss and 50 Hz hum), RMS 1."""
    white = rng.standard_normal(n)
    pink = np.cumsum(white)  # integrated: more energy low down, like line and room noise
    pink -= np.convolve(pink, np.ones(64) / 64, mode="same")
    t = (start + np.arange(n)) / rate
    noise = pink / (np.std(pink) or 1.0) + 0.3 * np.sin(2 * np.pi * 50 * t)
    return noise / (np.sqrt(np.mean(noise**2)) or 1.0)


def add_noise(audio: Audio, snr_db: float, *, seed: int) -> Audio:
    """Line noise (pink-ish hiss and hum) at ``snr_db`` under the speech's level."""
    n = len(audio.samples)
    noise = _line_noise(n, audio.rate, np.random.default_rng(seed))
    speech_db = rms_dbfs(audio.samples[np.abs(audio.samples) > 300]) if n else -120.0
    noise *= 32768 * 10 ** ((speech_db - snr_db) / 20)
    mixed = np.clip(audio.samples.astype(np.float64) + noise, -32768, 32767)
    return Audio(mixed.astype(np.int16), audio.rate)


def background(
    condition: Condition, rate: int, frame_len: int, *, key: str
) -> Iterator[np.ndarray] | None:
    """The line between the caller's words, frame by frame, endless (None: a quiet line).

    A noisy caller's line hisses and hums all call long, at the condition's SNR under the
    caller voice's level, not only while they speak.
    """
    rendering = RENDERINGS[condition]
    if rendering.snr_db is None:
        return None
    scale = 32768 * 10 ** ((CALLER_SPEECH_DBFS - rendering.snr_db) / 20)
    rng = np.random.default_rng(_seed(key))

    def frames() -> Iterator[np.ndarray]:
        block = rate * 2 // frame_len * frame_len  # about 2 s at a time
        done = 0
        while True:
            noise = _line_noise(block, rate, rng, start=done) * scale
            samples = np.clip(noise, -32768, 32767).astype(np.int16)
            done += block
            yield from samples.reshape(-1, frame_len)

    return frames()


def degrade(audio: Audio, condition: Condition, *, key: str) -> Audio:
    """What the IVR hears of ``audio`` from a caller in ``condition``."""
    rendering = RENDERINGS[condition]
    if rendering.snr_db is not None:
        audio = add_noise(audio, rendering.snr_db, seed=_seed(key))
    if rendering.phone_line:
        audio = telephone(audio)
    return audio


def not_speech(rate: int) -> dict[str, Audio]:
    """Sounds with nobody speaking, as a line carries them: none may become an answer or a turn.

    Line hiss, loud line noise, music, and keypad tones (the same every time).
    """
    from ivr.speech.dtmf import tone

    rng = np.random.default_rng(1)
    hiss = Audio((rng.standard_normal(rate * 2) * 3).astype(np.int16), rate)
    noise = add_noise(Audio(np.full(rate * 2, 1000, np.int16), rate), -20.0, seed=2)
    t = np.arange(rate * 3) / rate
    music = np.zeros_like(t)
    for i, f in enumerate((261.6, 329.6, 392.0, 523.3)):
        env = np.clip(np.sin(np.pi * ((t * 2 + i * 0.25) % 1)), 0, 1)
        music += np.sin(2 * np.pi * f * t) * env + 0.3 * np.sin(4 * np.pi * f * t) * env
    keys = [
        part
        for key in "1380013"
        for part in (tone(key, rate, ms=120), np.zeros(rate // 10, np.int16))
    ]
    return {
        "silence": hiss,
        "noise": noise,
        "music": Audio((music / np.max(np.abs(music)) * 9000).astype(np.int16), rate),
        "keypad": Audio(np.concatenate(keys), rate),
    }


def read_out(words: list[Audio], pause_s: float) -> Audio:
    """Recorded words said one by one: each cut to its voice (its 10 ms frames within 26 dB
    of its loudest, and 30 ms around them), joined with ``pause_s`` of quiet after each, at
    16 kHz. A caller reading a number out slowly, digit by digit, from recorded digits."""
    said: list[np.ndarray] = []
    for word in words:
        pcm = word.to_rate(16000).samples
        level = frame_levels(pcm, 160)
        loud = np.nonzero(level >= level.max() / 20)[0]
        if len(loud):
            pcm = pcm[max(0, int(loud[0]) - 3) * 160 : (int(loud[-1]) + 4) * 160]
        said += [pcm, np.zeros(int(pause_s * 16000), np.int16)]
    return Audio(np.concatenate(said) if said else np.zeros(0, np.int16), 16000)
