"""The natural voice: a Piper voice's ONNX model, loaded once per process.

Used under one lock: its phonemiser is not re-entrant. The speaking rate is reached
through the length scale (``ivr/data/voices.toml`` holds each voice's measured curve).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.audio import Audio
from ivr.speech.voices import NaturalVoice

log = logging.getLogger(__name__)

SENTENCE_GAP_MS: Final = 300


_voices: dict[str, Any] = {}
_lock = threading.Lock()  # loading, and every synthesis: the phonemiser is global


class _ReturningSession:
    """A natural voice's ONNX session that gives its memory back after every synthesis.

    onnxruntime's CPU arena keeps the peak of every run it served, and grows with each new
    shape: the longest sentences a voice had spoken stayed in the serving process for good
    (100 MB after one short sentence, 1.2 GB after two long ones, measured). Shrinking the
    arena at the end of each run gives it back for about 5 % more synthesis time; running
    without the arena cost 50 %.
    """

    def __init__(self, session: Any) -> None:
        import onnxruntime

        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return self._session.run(output_names, input_feed, run_options or self._options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def synthesize(voice: NaturalVoice, text: str, rate_wpm: int) -> Audio:
    """The natural voice's audio of ``text`` at ``rate_wpm`` (its sentences 300 ms apart)."""
    from piper import PiperVoice, SynthesisConfig

    with _lock:
        engine = _voices.get(voice.name)
        if engine is None:
            model, config = voice.paths()
            engine = PiperVoice.load(model, config)
            engine.session = _ReturningSession(engine.session)
            _voices[voice.name] = engine
            log.info("loaded natural voice %s", voice.name)
        options = SynthesisConfig(length_scale=voice.length_scale(rate_wpm), normalize_audio=False)
        chunks = [c.audio_float_array for c in engine.synthesize(text, options)]
        rate = int(engine.config.sample_rate)
    if not chunks:
        raise EngineError(f"the natural voice produced no audio for {len(text)} characters")
    gap = np.zeros(rate * SENTENCE_GAP_MS // 1000, dtype=np.float32)
    joined = np.concatenate([p for c in chunks for p in (c, gap)][:-1])
    peak = float(np.abs(joined).max()) or 1.0
    return Audio((joined / peak * 0.7 * 32767).astype(np.int16), rate)
