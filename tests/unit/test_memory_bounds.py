"""What a long-running server keeps in memory is bounded: the synthesizer's segment cache
drops the least recently used segments (read-backs of numbers make new texts every call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ivr.speech.tts import Synthesizer


def test_synthesizer_memory_cache_is_bounded(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path / "cache")
    texts = [f"Ticket {n} is open." for n in range(20261120, 20261132)]
    first = synth.segment(texts[0], voice="en-us", rate_wpm=150, sample_rate=8000)
    synth.memory_limit_bytes = 3 * first.nbytes
    for text in texts[1:]:
        synth.segment(text, voice="en-us", rate_wpm=150, sample_rate=8000)
    assert len(synth._memory) < len(texts)
    assert synth._memory_bytes <= synth.memory_limit_bytes + max(
        a.nbytes for a in synth._memory.values()
    )
    assert synth._memory_bytes == sum(a.nbytes for a in synth._memory.values())
    # a dropped segment comes back from the disk cache, the same audio
    again = synth.segment(texts[0], voice="en-us", rate_wpm=150, sample_rate=8000)
    assert np.array_equal(again, first)
