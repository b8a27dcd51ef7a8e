"""Resampling: the same audio always comes out the same (QA replays and tests depend on it)."""

from __future__ import annotations

import numpy as np

from ivr.speech.audio import StreamResampler, resample, split_frames


def _streamed(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    stream = StreamResampler(src, dst)
    parts = [stream.process(frame) for frame in split_frames(samples, src)]
    parts.append(stream.process(np.zeros(0, np.int16), last=True))
    return np.concatenate(parts)


def test_streamed_resampling_is_the_same_every_time() -> None:
    voice = (np.random.default_rng(7).standard_normal(8000) * 3000).astype(np.int16)
    first = _streamed(voice, 8000, 16000)
    assert all(np.array_equal(first, _streamed(voice, 8000, 16000)) for _ in range(5))


def test_streamed_resampling_matches_whole_clip_resampling() -> None:
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    streamed = _streamed(tone, 8000, 16000)
    whole = resample(tone, 8000, 16000)
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n].astype(int) - whole[:n].astype(int)).max() <= 2


def test_streamed_resampling_clips_instead_of_wrapping() -> None:
    square = np.tile(np.r_[np.full(40, 32767), np.full(40, -32768)], 100).astype(np.int16)
    out = _streamed(square, 8000, 16000)
    # the filter overshoots a full-scale square wave; the overshoot is clipped, never wrapped
    assert out.max() == 32767 and out.min() == -32768
    assert not np.any((out[1:].astype(int) - out[:-1].astype(int)) > 40000)
