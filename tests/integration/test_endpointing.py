"""When a caller's turn starts and ends, on a telephone line with noise on it.

Real human speech (../shared/speech) through 8 kHz G.711, with line noise at 15 dB SNR
before, under and after it, fed to the endpointer 20 ms at a time as a call feeds it.
Measured with both detectors in ``bench/vad.py`` (README): webrtcvad takes such noise for
speech, starts the turn before the caller speaks and ends it before they are done.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from ivr.qa.conditions import add_noise, not_speech
from ivr.speech import endpoint
from ivr.speech.audio import FRAME_MS, Audio, read_audio, telephone
from ivr.speech.endpoint import EndpointConfig, Endpointer, Event
from ivr.speech.vad import SileroStream

REPO = Path(__file__).resolve().parents[2]
SPEECH = Path(os.environ.get("IVR_SHARED_SPEECH", REPO.parent / "shared" / "speech"))
RATE = 8000
FRAME = RATE * FRAME_MS // 1000
PAD_S = 1.0


def _turn(samples: np.ndarray) -> tuple[float | None, float | None]:
    """Seconds at which the endpointer started and ended the turn (None: it did not)."""
    ep = Endpointer(RATE, EndpointConfig(no_input_ms=60_000))
    start = None
    for i in range(len(samples) // FRAME):
        event = ep.push(samples[i * FRAME : (i + 1) * FRAME])
        at = (i + 1) * FRAME_MS / 1000
        if event is Event.START:
            start = at
        elif event in (Event.END, Event.MAX_SPEECH):
            return start, at
    return start, None


def _noisy_line(samples: np.ndarray, seed: int) -> np.ndarray:
    return add_noise(Audio(samples, RATE), 15.0, seed=seed).samples


def _digit_strings() -> list[Path]:
    with (SPEECH / "INDEX.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [SPEECH / r["file"] for r in rows if r["file"].startswith("an4/")][::8]


@pytest.mark.parametrize("noisy", [False, True], ids=["quiet line", "noisy line"])
def test_a_turn_starts_with_the_caller_and_ends_after_them(noisy: bool) -> None:
    clips = _digit_strings()
    assert len(clips) >= 15
    wrong = []
    for n, path in enumerate(clips):
        speech = telephone(read_audio(path)).to_rate(RATE).samples
        hiss = np.random.default_rng(n).standard_normal(int(PAD_S * RATE)) * 30
        pad = hiss.astype(np.int16)
        samples = np.concatenate([pad, speech, pad])
        if noisy:
            samples = _noisy_line(samples, n)
        start, end = _turn(samples)
        spoken_end = PAD_S + len(speech) / RATE
        if start is None or start < PAD_S or start > spoken_end:
            wrong.append((path.name, "started at", start))
        elif end is None or end < spoken_end:
            wrong.append((path.name, f"ended at {end} of {spoken_end:.2f}", start))
    assert not wrong, wrong


def test_noise_music_and_keypad_tones_start_no_turn() -> None:
    signals = {name: a.samples for name, a in not_speech(RATE).items()}
    signals["keypad on a noisy line"] = _noisy_line(signals["keypad"], 3)
    signals["noise on a noisy line"] = _noisy_line(signals["noise"], 4)
    started = {
        name: _turn(telephone(Audio(s, RATE)).to_rate(RATE).samples)[0]
        for name, s in signals.items()
    }
    assert all(v is None for v in started.values()), started


def test_silero_rests_on_a_quiet_line_and_hears_the_same_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller who waits in silence before and after speaking: Silero is not run on most of
    the quiet, and the turn starts and ends where it does when Silero hears every frame."""
    runs = 0
    hear = SileroStream.is_speech

    def counted(stream: SileroStream, frame: np.ndarray) -> bool:
        nonlocal runs
        runs += 1
        return hear(stream, frame)

    monkeypatch.setattr(SileroStream, "is_speech", counted)
    quiet = np.zeros(3 * RATE, np.int16)
    for path in _digit_strings():
        speech = telephone(read_audio(path)).to_rate(RATE).samples
        samples = np.concatenate([quiet, speech, quiet])
        runs = 0
        resting = _turn(samples)
        resting_runs, runs = runs, 0
        resting_after = endpoint.REST_AFTER_QUIET_FRAMES
        monkeypatch.setattr(endpoint, "REST_AFTER_QUIET_FRAMES", 10**9)
        hearing_all = _turn(samples)
        monkeypatch.setattr(endpoint, "REST_AFTER_QUIET_FRAMES", resting_after)
        # of the 150 quiet frames before the caller speaks, Silero hears the first and last
        # REST_AFTER_QUIET_FRAMES (25)
        skipped = 150 - 2 * endpoint.REST_AFTER_QUIET_FRAMES
        assert runs - resting_runs >= skipped, (path.name, resting_runs, runs)
        assert resting[0] is not None and hearing_all[0] is not None
        # a start a few frames apart: the 600 ms before it go to the recogniser either way
        assert abs(resting[0] - hearing_all[0]) <= 0.2, (path.name, resting, hearing_all)
        assert resting[0] > 3  # started with the caller, not on the quiet
        assert resting[1] is not None and hearing_all[1] is not None
        assert abs(resting[1] - hearing_all[1]) <= 0.3, (path.name, resting, hearing_all)
        assert resting[1] > 3 + len(speech) / RATE  # ended after the caller, never inside
