"""Audio values and every conversion between formats.

PCM inside the product is mono signed 16-bit little-endian held in numpy
``int16`` arrays. All resampling goes through :func:`resample` (soxr, a
filtered resampler: ``audioop.ratecv`` does no anti-alias filtering).
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import soxr

from ivr.errors import AudioError

FRAME_MS: Final = 20
SUPPORTED_RATES: Final = (8000, 16000, 32000, 48000)


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int = 2
    channels: int = 1

    def __str__(self) -> str:
        return f"{self.rate}/{self.width}/{self.channels}"

    def check(self, other: AudioFormat) -> None:
        if other != self:
            raise AudioError(f"expected {self}, got {other}")


@dataclass(frozen=True)
class Audio:
    """A mono 16-bit clip at a known rate."""

    samples: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def to_rate(self, rate: int) -> Audio:
        return Audio(resample(self.samples, self.rate, rate), rate)

    def frames(self, ms: int = FRAME_MS) -> list[np.ndarray]:
        return split_frames(self.samples, self.rate, ms)


def frame_samples(rate: int, ms: int = FRAME_MS) -> int:
    return rate * ms // 1000


def split_frames(samples: np.ndarray, rate: int, ms: int = FRAME_MS) -> list[np.ndarray]:
    """Cut into frames of ``ms``; the last one is padded with silence."""
    n = frame_samples(rate, ms)
    if len(samples) == 0:
        return []
    pad = (-len(samples)) % n
    if pad:
        samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
    return [samples[i : i + n] for i in range(0, len(samples), n)]


def silence(rate: int, ms: int) -> np.ndarray:
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Filtered sample-rate conversion of int16 mono audio."""
    if src_rate <= 0 or dst_rate <= 0:
        raise AudioError(f"expected positive sample rates, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or len(samples) == 0:
        return samples.astype(np.int16, copy=False)
    out = soxr.resample(samples.astype(np.int16, copy=False), src_rate, dst_rate, quality="HQ")
    return np.asarray(out, dtype=np.int16)


class StreamResampler:
    """Frame-by-frame resampling for live streams (keeps filter state between frames).

    The stream works in floating point and rounds to int16 itself: soxr's own int16 stream
    output is dithered from a time-seeded noise source, so the same call would be heard a
    little differently on every replay.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._stream = (
            None
            if src_rate == dst_rate
            else soxr.ResampleStream(src_rate, dst_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return samples
        out = self._stream.resample_chunk(samples.astype(np.float32), last=last)
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def _to_mono_int16(raw: bytes, width: int, channels: int) -> np.ndarray:
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        data = ((b[:, 2].astype(np.int8).astype(np.int32) << 8) | b[:, 1]).astype(np.int16)
    elif width == 4:
        data = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise AudioError(f"expected 8, 16, 24 or 32-bit samples, got {width * 8}-bit")
    if channels > 1:
        usable = len(data) - len(data) % channels
        data = data[:usable].reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data


def read_audio(path: Path | str) -> Audio:
    """Read a WAV file of any common PCM format (or any file ffmpeg can read) as mono int16."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioError(f"{path}: expected an audio file, got a folder or device")
    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        return _read_with_pydub(path, exc)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if rate <= 0:
        raise AudioError(f"{path}: expected a positive sample rate, got {rate}")
    return Audio(_to_mono_int16(raw, width, channels), rate)


def wav_frames(path: Path | str) -> int | None:
    """The frames of a complete 16-bit WAV file; ``None`` while it is missing or incomplete
    (its header promises more than it holds)."""
    try:
        with wave.open(str(path), "rb") as w:
            frames = w.getnframes()
            return frames if len(w.readframes(frames)) == frames * 2 else None
    except (wave.Error, EOFError, OSError):
        return None


def _read_with_pydub(path: Path, first_error: Exception) -> Audio:
    """Formats the wave module does not read (float WAV, MP3, ...) go through pydub/ffmpeg."""
    from pydub import AudioSegment  # imported here: it probes for ffmpeg at import

    try:
        seg = AudioSegment.from_file(str(path))
    except Exception as exc:  # pydub raises bare exceptions of several kinds
        raise AudioError(
            f"{path}: not a readable audio file ({first_error}; decoder said: {exc})"
        ) from exc
    seg = seg.set_channels(1).set_sample_width(2)
    return Audio(np.frombuffer(seg.raw_data, dtype="<i2").astype(np.int16), seg.frame_rate)


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: Path | str, samples: np.ndarray, rate: int) -> None:
    """Write mono (1-D) or interleaved stereo (N x 2) int16 audio."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(wav_bytes(samples.reshape(-1), rate, channels))


# --- G.711 (ITU-T) companding, used to simulate and to carry telephone audio -----------------

_MU_BIAS: Final = 0x84
_MU_BIAS_14: Final = 0x21
_MU_CLIP_14: Final = 8159
_MU_SEGMENT_ENDS: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _ulaw_encode_formula(samples: np.ndarray) -> np.ndarray:
    x = samples.astype(np.int32) >> 2  # G.711 works on 14-bit magnitudes
    mask = np.where(x < 0, 0x7F, 0xFF)
    x = np.minimum(np.abs(x), _MU_CLIP_14) + _MU_BIAS_14
    segment = np.searchsorted(_MU_SEGMENT_ENDS, x)
    value = np.where(segment >= 8, 0x7F, (segment << 4) | ((x >> (segment + 1)) & 0x0F))
    return ((value ^ mask) & 0xFF).astype(np.uint8)


def _ulaw_decode_formula(codes: np.ndarray) -> np.ndarray:
    u = ~codes.astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    x = (((mantissa << 3) + _MU_BIAS) << exponent) - _MU_BIAS
    return np.where(sign != 0, -x, x).astype(np.int16)


def _alaw_encode_formula(samples: np.ndarray) -> np.ndarray:
    x = samples.astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    x = np.where(x < 0, -x - 1, x)
    x = np.minimum(x, 0xFFF)
    exponent = np.where(x < 32, 0, np.floor(np.log2(np.maximum(x, 1))).astype(np.int32) - 4)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, x >> 1, x >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def _alaw_decode_formula(codes: np.ndarray) -> np.ndarray:
    a = codes.astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    x = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(sign != 0, x, -x).astype(np.int16)


# Every call's audio goes through these 50 times a second: tables made once from the
# formulas, indexed by the sample's 16 bits (encoding) or by the code (decoding).
_EVERY_SAMPLE: Final = np.arange(65536, dtype=np.uint16).view(np.int16)
_EVERY_CODE: Final = np.arange(256, dtype=np.uint8)
_ULAW_ENCODE: Final = _ulaw_encode_formula(_EVERY_SAMPLE)
_ULAW_DECODE: Final = _ulaw_decode_formula(_EVERY_CODE)
_ALAW_ENCODE: Final = _alaw_encode_formula(_EVERY_SAMPLE)
_ALAW_DECODE: Final = _alaw_decode_formula(_EVERY_CODE)


def _as_int16(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.int16:
        return samples
    return np.clip(samples, -32768, 32767).astype(np.int16)


def ulaw_encode(samples: np.ndarray) -> bytes:
    return _ULAW_ENCODE[_as_int16(samples).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(samples: np.ndarray) -> bytes:
    return _ALAW_ENCODE[_as_int16(samples).view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def telephone(audio: Audio, *, law: str = "ulaw") -> Audio:
    """What a caller's speech sounds like after a G.711 phone line: 8 kHz, companded."""
    narrow = resample(audio.samples, audio.rate, 8000)
    if law == "ulaw":
        narrow = ulaw_decode(ulaw_encode(narrow))
    elif law == "alaw":
        narrow = alaw_decode(alaw_encode(narrow))
    else:
        raise AudioError(f"expected law 'ulaw' or 'alaw', got {law!r}")
    return Audio(narrow, 8000)


def rms_dbfs(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * float(np.log10(max(rms, 1e-6) / 32768))
