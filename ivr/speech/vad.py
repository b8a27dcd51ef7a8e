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
# Silero judges 32 ms windows, and where a short word falls among them matters: over the
# phone line one recorded 五 peaks at 0.30 or 0.80 depending on the offset, and with 0.3 s
# of silence before them three of the ten recorded Mandarin digits had no voice at all,
# which cut a phone number's first digits away. So the utterance is judged twice, the second
# time half a window later, and the voice is what either finds: of 2000 human words and
# digits over the phone (four lengths of silence before each) 10 had no voice at one offset
# and 3 at two, and of 88 sounds with nobody speaking one more (keypad tones in line noise,
# which the recognisers take as keys) gained one.
OFFSETS: Final = (0, 256)


def voiced_span(audio: np.ndarray) -> tuple[int, int] | None:
    """First and last sample of voice in ``audio`` (float32 in [-1, 1] at 16 kHz), or None."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=THRESHOLD, min_speech_duration_ms=MIN_SPEECH_MS, speech_pad_ms=PAD_MS
    )
    found: list[tuple[int, int]] = []
    for offset in OFFSETS:
        shifted = np.concatenate([np.zeros(offset, audio.dtype), audio]) if offset else audio
        spans = get_speech_timestamps(shifted, options)
        if spans:
            start, end = int(spans[0]["start"]) - offset, int(spans[-1]["end"]) - offset
            found.append((max(0, start), min(len(audio), end)))
    if not found:
        return None
    return min(s for s, _ in found), max(e for _, e in found)


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
