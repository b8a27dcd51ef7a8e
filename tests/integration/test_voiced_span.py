"""Is there a voice in a finished utterance, and where (``ivr.speech.vad.voiced_span``)?

Every answer a recogniser gives is believed only when the utterance has a voice, and a
digit ask's audio is cut to the voice before Whisper hears it: a voice found late cuts the
first digits away, and none found loses the answer. Real recordings through the phone path.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from ivr.qa.conditions import add_noise, not_speech
from ivr.speech.audio import Audio, read_audio, resample, telephone
from ivr.speech.level import frame_levels
from ivr.speech.vad import VAD_RATE, voiced_span

REPO = Path(__file__).resolve().parents[2]
SPEECH = Path(os.environ.get("IVR_SHARED_SPEECH", REPO.parent / "shared" / "speech"))
# line before the word: the recognisers always put 0.3 s of it before an utterance
LEADS_S = (0.3, 0.4, 0.5, 0.8)


def _pcm(audio: Audio) -> np.ndarray:
    return resample(audio.samples, audio.rate, VAD_RATE).astype(np.float32) / 32768.0


def _with_lead(pcm: np.ndarray, lead_s: float) -> np.ndarray:
    hiss = np.random.default_rng(1).standard_normal(int(lead_s * VAD_RATE)) * 5e-4
    return np.concatenate([hiss.astype(np.float32), pcm])


def _voice_starts(pcm: np.ndarray) -> float:
    """When the recording's own voice starts (its level first reaches a tenth of its peak)."""
    level = frame_levels(pcm, 160)
    return float(np.argmax(level >= level.max() / 10)) * 160 / VAD_RATE


def test_every_recorded_mandarin_digit_over_the_phone_has_its_voice_found() -> None:
    """One syllable each, loud, spoken right after the line opens: at one offset of Silero's
    windows three of the ten had no voice with 0.3 s of line before them."""
    with (SPEECH / "zh-CN" / "INDEX.tsv").open() as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "digit"]
    assert len(rows) == 10
    missed = []
    for row in rows:
        pcm = _pcm(telephone(read_audio(SPEECH / "zh-CN" / row["file"])))
        starts = _voice_starts(pcm)
        for lead in LEADS_S:
            span = voiced_span(_with_lead(pcm, lead))
            if span is None or span[0] / VAD_RATE > lead + starts + 0.1:
                missed.append((row["text"], lead, span))
    assert not missed


def test_loud_words_over_the_phone_have_a_voice() -> None:
    """Recorded digits brought near full scale (a loud caller, a line with gain on it)."""
    with (SPEECH / "INDEX.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    words = [r for r in rows if r["file"].startswith(("fsdd/", "speech_commands"))]
    assert len(words) >= 250
    missed = []
    for row in words:
        audio = read_audio(SPEECH / row["file"])
        loud = audio.samples.astype(np.float64) * 30000 / max(1, int(np.abs(audio.samples).max()))
        pcm = _pcm(telephone(Audio(loud.astype(np.int16), audio.rate)))
        if voiced_span(_with_lead(pcm, 0.3)) is None:
            missed.append(row["file"])
    assert len(missed) <= len(words) // 50, missed


@pytest.mark.parametrize("noisy", [False, True], ids=["quiet line", "noisy line"])
def test_silence_line_noise_and_music_have_no_voice(noisy: bool) -> None:
    for rate in (8000, 16000):
        for name, sound in not_speech(rate).items():
            if name == "keypad":  # keys are taken as keys before any voice is looked for
                continue
            heard = add_noise(sound, 15.0, seed=3) if noisy else sound
            for lead in (0.0, 0.3):
                assert voiced_span(_with_lead(_pcm(heard), lead)) is None, (name, rate, lead)
