"""Endpointing on 8 kHz audio: webrtcvad against Silero VAD, frame by frame.

The endpointer (``ivr.speech.endpoint``) decides every 20 ms whether the caller speaks:
when a turn starts, and when it ends (a run of silence). This benchmark feeds it the
same audio with each voice-activity detector deciding the frames:

* human words and digit strings of ../shared/speech through the telephone path (8 kHz
  G.711 µ-law), with 1 s of line before and after, quiet or with line noise at 15 dB SNR;
* line noise, music and keypad tones with nobody speaking.

For each: how many spoken turns start, how late the start is, how long after the last
word the turn ends (the caller's wait), how many turns end inside the speech (a slow
caller cut off), how many turns start on non-speech, and the compute per second of audio.

Writes bench/vad-results.json and prints the README table.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.qa.conditions import add_noise, not_speech  # noqa: E402
from ivr.speech.audio import FRAME_MS, Audio, read_audio, resample, telephone  # noqa: E402
from ivr.speech.endpoint import Detector, EndpointConfig, Endpointer, Event  # noqa: E402

SPEECH = Path(os.environ.get("IVR_SHARED_SPEECH", REPO.parent / "shared" / "speech"))
RATE = 8000
PAD_S = 1.0
FRAME = RATE * FRAME_MS // 1000
Decider = Callable[[np.ndarray], list[bool]]  # 8 kHz int16 -> one verdict per 20 ms frame


def webrtc(aggressiveness: int) -> Decider:
    def decide(samples: np.ndarray) -> list[bool]:
        ep = Endpointer(
            RATE, EndpointConfig(aggressiveness=aggressiveness, detector=Detector.WEBRTC)
        )
        n = len(samples) // FRAME
        return [ep.is_speech(samples[i * FRAME : (i + 1) * FRAME]) for i in range(n)]

    return decide


def silero(threshold: float) -> Decider:
    """Silero's 32 ms windows (at 16 kHz), each 20 ms frame taking the window it ends in."""
    from faster_whisper.vad import get_vad_model

    model = get_vad_model()

    def decide(samples: np.ndarray) -> list[bool]:
        pcm = resample(samples, RATE, 16000).astype(np.float32) / 32768.0
        pcm = np.pad(pcm, (0, (-len(pcm)) % 512))
        probs = np.asarray(model(pcm)).ravel()
        n = len(samples) // FRAME
        window = [min(len(probs) - 1, ((i + 1) * 320 - 1) // 512) for i in range(n)]
        return [bool(probs[w] > threshold) for w in window]

    return decide


def silero_stream() -> Decider:
    """What the endpointer uses: ``SileroStream`` fed 20 ms frames as they arrive, frames
    under the loudness floor no speech, the model resting on a quiet line."""

    def decide(samples: np.ndarray) -> list[bool]:
        ep = Endpointer(RATE, EndpointConfig(detector=Detector.SILERO))
        n = len(samples) // FRAME
        return [ep.is_speech(samples[i * FRAME : (i + 1) * FRAME]) for i in range(n)]

    return decide


def turn(verdicts: list[bool]) -> tuple[int | None, int | None]:
    """The endpointer's START and END frames for these per-frame verdicts."""
    ep = Endpointer(RATE, EndpointConfig(no_input_ms=60_000, detector=Detector.WEBRTC))
    given = iter(verdicts)
    ep.is_speech = lambda _frame: next(given)  # type: ignore[method-assign]
    start = None
    silent = np.zeros(FRAME, np.int16)
    for i in range(len(verdicts)):
        event = ep.push(silent)
        if event is Event.START and start is None:
            start = i
        elif event in (Event.END, Event.MAX_SPEECH):
            return start, i
    return start, None


def line(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 30).astype(np.int16)  # line hiss


def spoken(noisy: bool) -> list[tuple[np.ndarray, float, float, str]]:
    """(audio, start s, end s, name) of each padded human utterance."""
    with (SPEECH / "INDEX.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for n, r in enumerate(rows[::3]):
        clip = telephone(read_audio(SPEECH / r["file"])).to_rate(RATE).samples
        pad = line(PAD_S, n)
        samples = np.concatenate([pad, clip, line(PAD_S, n + 1)])
        if noisy:
            samples = add_noise(Audio(samples, RATE), 15.0, seed=n).samples
        out.append((samples, PAD_S, PAD_S + len(clip) / RATE, r["file"]))
    return out


def not_spoken() -> dict[str, np.ndarray]:
    signals = {k: v for k, v in not_speech(RATE).items() if k != "silence"}
    return {k: telephone(v).to_rate(RATE).samples for k, v in signals.items()}


def measure(name: str, decide: Decider, noisy: bool) -> dict[str, float]:
    started = late = cut = 0
    start_ms: list[float] = []
    wait_ms: list[float] = []
    audio_s = 0.0
    spent = 0.0
    utterances = spoken(noisy)
    for samples, begin, end, _ in utterances:
        t0 = time.process_time()
        verdicts = decide(samples)
        spent += time.process_time() - t0
        audio_s += len(samples) / RATE
        s, e = turn(verdicts)
        if s is None:
            continue
        started += 1
        start_ms.append((s + 1) * FRAME_MS - begin * 1000)
        late += (s + 1) * FRAME_MS > end * 1000
        if e is not None:
            wait_ms.append((e + 1) * FRAME_MS - end * 1000)
            cut += (e + 1) * FRAME_MS < end * 1000
    false_starts = 0
    for samples in not_spoken().values():
        if noisy:
            samples = add_noise(Audio(samples, RATE), 15.0, seed=9).samples
        false_starts += turn(decide(samples))[0] is not None
    result = {
        "turns started": started / len(utterances),
        "start after speech began, median ms": float(np.median(start_ms)),
        "started only after the speech ended": float(late),
        "wait after the last word, median ms": float(np.median(wait_ms)),
        "wait after the last word, p95 ms": float(np.percentile(wait_ms, 95)),
        "turns cut inside the speech": float(cut),
        "starts on non-speech (of 3)": float(false_starts),
        "compute ms per s of audio": spent / audio_s * 1000,
        "utterances": float(len(utterances)),
    }
    print(name, json.dumps(result), flush=True)
    return result


def main() -> None:
    deciders = {
        "webrtcvad, aggressiveness 2 (before)": webrtc(2),
        "webrtcvad, aggressiveness 3": webrtc(3),
        "Silero, threshold 0.35, whole clip": silero(0.35),
        "Silero, threshold 0.5, whole clip": silero(0.5),
        "Silero, threshold 0.5, frame by frame (used)": silero_stream(),
    }
    results = {
        f"{name}, {'line noise 15 dB SNR' if noisy else 'quiet line'}": measure(name, d, noisy)
        for noisy in (False, True)
        for name, d in deciders.items()
    }
    out = REPO / "bench" / "vad-results.json"
    out.write_text(json.dumps(results, indent=2))
    cols = list(next(iter(results.values())))[:-1]
    print("\n| detector | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, r in results.items():
        print(
            f"| {name} | "
            + " | ".join(f"{r[c]:.2f}" if r[c] < 10 else f"{r[c]:.0f}" for c in cols)
            + " |"
        )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
