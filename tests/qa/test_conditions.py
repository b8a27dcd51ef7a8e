"""Caller conditions: a noisy caller's line carries noise all call long, not only under words."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.channels.base import Frame
from ivr.channels.scripted import ScriptedChannel, Turn, TurnKind
from ivr.qa.conditions import CALLER_SPEECH_DBFS, RENDERINGS, Condition, background
from ivr.qa.runner import QaRunner
from ivr.speech.audio import rms_dbfs
from tests.conftest import REPO


def _frames(line, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([next(line) for _ in range(n)])


def test_noisy_line_hisses_at_the_conditions_snr_and_is_the_same_every_run() -> None:
    line = background(Condition.NOISY, 8000, 160, key="a call")
    assert line is not None
    samples = _frames(line, 500)  # 10 s: across several generated blocks
    snr = RENDERINGS[Condition.NOISY].snr_db
    assert snr is not None
    assert rms_dbfs(samples) == pytest.approx(CALLER_SPEECH_DBFS - snr, abs=1.0)
    # no frame of digital silence anywhere, no jump where one block meets the next
    per_frame = samples.reshape(-1, 160)
    assert all(rms_dbfs(f) > CALLER_SPEECH_DBFS - snr - 12 for f in per_frame)
    again = background(Condition.NOISY, 8000, 160, key="a call")
    assert again is not None and np.array_equal(_frames(again, 500), samples)
    other = background(Condition.NOISY, 8000, 160, key="another call")
    assert other is not None and not np.array_equal(_frames(other, 500), samples)


@pytest.mark.parametrize("condition", [Condition.CLEAN, Condition.PHONE])
def test_clean_and_phone_lines_are_quiet_between_words(condition: Condition) -> None:
    assert background(condition, 8000, 160, key="a call") is None


def test_scripted_channel_plays_the_line_in_pauses_and_around_keys() -> None:
    line = background(Condition.NOISY, 16000, 320, key="keys")
    channel = ScriptedChannel([Turn(TurnKind.DTMF, keys="1")], line=line)
    channel.listening("main_menu")
    frames = []
    for _ in range(40):  # the lead-in, the gap before the key, the key, then the idle line
        event = channel.receive()
        if isinstance(event, Frame):
            frames.append(event.samples)
    assert len(frames) >= 35
    assert all(np.abs(f).max() > 0 for f in frames)
    assert np.abs(channel.stereo()[:, 0]).max() > 0  # the recording keeps what the line carried


def test_line_noise_is_no_input_and_a_noisy_caller_is_understood(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Whole calls in the noisy condition with the line hissing between turns: three
    silences at the menu are still three no-inputs (noise is nobody speaking), and a spoken
    ticket-status call still goes through."""
    runner = QaRunner(settings, condition="noisy", record_dir=tmp_path / "rec")
    try:
        for name in ("silence_at_menu", "ticket_status_speech"):
            report = runner.run_path(REPO / "tests" / "calls" / name / "call.yaml")
            assert report.passed, (name, report.error)
            with wave.open(str(report.recording)) as wav:
                rate = wav.getframerate()
                stereo = np.frombuffer(wav.readframes(rate), np.int16).reshape(-1, 2)
            # the caller's side of the recording, during the welcome: the hissing line
            level = CALLER_SPEECH_DBFS - 15.0  # the noisy condition: 15 dB SNR
            assert rms_dbfs(stereo[:, 0]) == pytest.approx(level, abs=3.0), name
    finally:
        runner.close()


def test_a_phone_number_spoken_over_the_phone_line_is_heard_in_its_usual_shape(settings) -> None:  # type: ignore[no-untyped-def]
    """Through 8 kHz G.711 the synthetic caller's "one three eight, zero zero one three, eight
    zero zero zero" comes out of Whisper with a fifth zero first and the right number next:
    the number of the usual shape is taken, at the ask and when it is said again whole at
    the read-back, and the account is found."""
    runner = QaRunner(settings, condition="phone")
    try:
        for name in ("recovery_spoken_number", "recovery_whole_number_corrected"):
            report = runner.run_path(REPO / "tests" / "calls" / name / "call.yaml")
            assert report.passed, (name, report.failures, report.error)
    finally:
        runner.close()
