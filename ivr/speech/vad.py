"""Is there a voice in this utterance? Silero VAD, the model that ships inside faster-whisper.

The endpointer's webrtcvad decides quickly, frame by frame, when a turn starts and ends,
and it starts on anything loud. Silero tells line noise, music and keypad tones from a
voice far better (measured: README, Recognition), so it checks a finished utterance before
any recogniser's answer to it is believed.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ivr.speech.audio import resample

VAD_RATE: Final = 16000
# Measured on 260 human single words through the phone path (FSDD, Speech Commands) and on
# silence, line noise, music and keypad tones in the three caller conditions: at 0.5 and
# 100 ms, four short words (0.3 s "zero", "eight") had no voice; at 0.35 and 60 ms every word
# has one and no non-speech signal gains any.
THRESHOLD: Final = 0.35
MIN_SPEECH_MS: Final = 60
PAD_MS: Final = 100


def has_voice_16k(audio: np.ndarray) -> bool:
    """``audio``: float32 in [-1, 1] at 16 kHz."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=THRESHOLD, min_speech_duration_ms=MIN_SPEECH_MS, speech_pad_ms=PAD_MS
    )
    return bool(get_speech_timestamps(audio, options))


def has_voice(samples: np.ndarray, rate: int) -> bool:
    """``samples``: int16 at ``rate``."""
    if len(samples) == 0:
        return False
    pcm = resample(samples.astype(np.int16), rate, VAD_RATE).astype(np.float32) / 32768.0
    return has_voice_16k(pcm)
