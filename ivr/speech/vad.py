"""Is there a voice? Silero VAD, the model that ships inside faster-whisper.

Silero tells line noise, music and keypad tones from a voice far better than webrtcvad
(measured: README, Recognition, and ``bench/vad.py``). It checks every finished utterance
before any recogniser's answer to it is believed (``has_voice``), and it decides, frame by
frame, when a caller's turn starts and ends (``SileroStream``, for the endpointer).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ivr.speech.audio import StreamResampler, resample

VAD_RATE: Final = 16000
# Measured on 260 human single words through the phone path (FSDD, Speech Commands) and on
# silence, line noise, music and keypad tones in the three caller conditions: at 0.5 and
# 100 ms, four short words (0.3 s "zero", "eight") had no voice; at 0.35 and 60 ms every word
# has one and no non-speech signal gains any.
THRESHOLD: Final = 0.35
MIN_SPEECH_MS: Final = 60
PAD_MS: Final = 100


def voiced_span(audio: np.ndarray) -> tuple[int, int] | None:
    """First and last sample of voice in ``audio`` (float32 in [-1, 1] at 16 kHz), or None."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=THRESHOLD, min_speech_duration_ms=MIN_SPEECH_MS, speech_pad_ms=PAD_MS
    )
    spans = get_speech_timestamps(audio, options)
    return (int(spans[0]["start"]), int(spans[-1]["end"])) if spans else None


def has_voice_16k(audio: np.ndarray) -> bool:
    """``audio``: float32 in [-1, 1] at 16 kHz."""
    return voiced_span(audio) is not None


def has_voice(samples: np.ndarray, rate: int) -> bool:
    """``samples``: int16 at ``rate``."""
    if len(samples) == 0:
        return False
    pcm = resample(samples.astype(np.int16), rate, VAD_RATE).astype(np.float32) / 32768.0
    return has_voice_16k(pcm)


# --- frame by frame, for the endpointer -------------------------------------------------------
WINDOW: Final = 512  # Silero's window at 16 kHz (32 ms)
CONTEXT: Final = 64  # samples of the previous window it sees with each one
STREAM_THRESHOLD: Final = 0.5  # bench/vad.py: no turn cut inside the speech at 0.5


class SileroStream:
    """Silero's speech probability for a live stream, 20 ms frame by 20 ms frame.

    The model is shared by every call of the process (an ONNX session runs calls side by
    side); each stream keeps its own recurrent state, context and resampler. A verdict
    changes every 32 ms, when a window is complete.
    """

    def __init__(self, rate: int, threshold: float = STREAM_THRESHOLD) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session
        self._resampler = StreamResampler(rate, VAD_RATE)
        self.threshold = threshold
        self._pending = np.zeros(0, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self.probability = 0.0

    def is_speech(self, frame: np.ndarray) -> bool:
        """``frame``: int16 at the stream's rate."""
        pcm = self._resampler.process(frame.astype(np.int16, copy=False))
        self._pending = np.concatenate([self._pending, pcm.astype(np.float32) / 32768.0])
        while len(self._pending) >= WINDOW:
            window, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            batch = np.concatenate([self._context, window])[np.newaxis, :]
            out, self._h, self._c = self._session.run(
                None, {"input": batch, "h": self._h, "c": self._c}
            )
            self._context = window[-CONTEXT:]
            self.probability = float(np.asarray(out).ravel()[0])
        return self.probability > self.threshold
