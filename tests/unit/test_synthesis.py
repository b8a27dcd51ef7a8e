"""espeak-ng's quirks behind pyttsx3, absorbed by ``ivr.speech.espeak`` (a stand-in engine)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from ivr.errors import EngineError
from ivr.speech.audio import read_audio, write_wav
from ivr.speech.espeak import _synthesize_file


class _Engine:
    """pyttsx3's engine as ``_synthesize_file`` drives it; each run writes what ``runs`` says:
    ``"dropped"`` a WAV of no frames (espeak-ng ended the message unsaid), ``"audio"`` speech."""

    def __init__(self, runs: list[str]) -> None:
        self.runs = runs
        self.done: list[str] = []
        self.proxy = self
        self._driver = self
        self._save: tuple[str, str] | None = None

    def setProperty(self, name: str, value: object) -> None:
        pass

    def save_to_file(self, text: str, path: str) -> None:
        self._save = (text, path)

    def runAndWait(self) -> None:
        assert self._save is not None
        what = self.runs[len(self.done)]
        self.done.append(what)
        samples = np.full(2205 if what == "audio" else 0, 1000, dtype=np.int16)
        write_wav(Path(self._save[1]), samples, 22050)


def test_a_message_espeak_ng_dropped_is_made_again_without_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = _Engine(["dropped", "audio"])
    out = tmp_path / "out.wav"
    with caplog.at_level(logging.DEBUG, logger="ivr.speech.espeak"):
        _synthesize_file(engine, "你好", "cmn", 150, out)
    assert engine.done == ["dropped", "audio"]
    assert len(read_audio(out).samples) == 2205
    messages = [r.getMessage() for r in caplog.records]
    assert any("without audio" in m for m in messages)
    # not taken for output still being written, which is waited on for seconds
    assert not any("incomplete" in m for m in messages)


def test_a_voice_that_keeps_dropping_the_message_is_a_clear_error(tmp_path: Path) -> None:
    engine = _Engine(["dropped"] * 3)
    with pytest.raises(EngineError, match="no usable audio"):
        _synthesize_file(engine, "你好", "cmn", 150, tmp_path / "out.wav")
    assert len(engine.done) == 3
