"""Benchmarks: turn latency over the scripted test calls, recogniser real-time factors.

Writes bench/results.json and prints a Markdown table for the README.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.config import load_settings  # noqa: E402
from ivr.qa.runner import QaRunner  # noqa: E402
from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.qa.testcall import find_calls  # noqa: E402
from ivr.speech.audio import split_frames  # noqa: E402
from ivr.speech.grammar import GrammarBook  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def turn_latency(home: Path) -> dict[str, float]:
    settings = load_settings(home=home)
    runner = QaRunner(settings)
    calls = find_calls([REPO / "tests" / "calls"])
    for path in calls:  # first pass fills the prompt cache, as `ivr prompts build` would
        runner.run_path(path)
    runner.latencies_ms.clear()
    for path in calls:
        runner.run_path(path)
    lat = runner.latencies_ms
    return {"turns": len(lat), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)}


def rtf(engine, grammar, texts: list[str], rate: int = 16000, locale: str = "en-US") -> float:  # type: ignore[no-untyped-def]
    audio_s = 0.0
    cpu_s = 0.0
    for text in texts:
        audio = caller_speech(text, locale=locale).to_rate(rate)
        rec = engine.recognizer(grammar, rate)
        frames = split_frames(audio.samples, rate)
        t0 = time.process_time()
        for f in frames:
            rec.accept(f)
        rec.finish()
        cpu_s += time.process_time() - t0
        audio_s += len(frames) * 0.02
    return cpu_s / audio_s


def main() -> None:
    from ivr.speech.asr.sphinx import SphinxEngine

    with tempfile.TemporaryDirectory() as home:
        latency = turn_latency(Path(home))
    grammars = GrammarBook(REPO / "grammars", "en-US")
    sphinx = SphinxEngine()
    texts = [
        "yes",
        "I forgot my password",
        "one three eight, zero zero one three, eight zero zero zero",
    ]
    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "turn_latency": latency,
        "rtf": {
            "pocketsphinx yes_no": rtf(sphinx, grammars.get("yes_no"), texts[:1] * 3),
            "pocketsphinx main_menu": rtf(sphinx, grammars.get("main_menu"), texts[1:2] * 3),
            "pocketsphinx phone_number": rtf(sphinx, grammars.get("phone_number"), texts[2:] * 3),
        },
    }
    try:
        from ivr.speech import models
        from ivr.speech.asr.vosk import VoskEngine
        from ivr.speech.grammar import Grammar

        path = models.bundled_model_paths()["ko-KR"]
        vosk = VoskEngine(path, "ko-KR")
        g = Grammar("yes_no", "ko-KR", {"네": "yes", "아니요": "no"})
        results["rtf"]["vosk (ko) yes_no"] = rtf(vosk, g, ["네", "아니요"] * 3, locale="ko-KR")
    except (KeyError, ImportError) as exc:
        print(f"vosk benchmark skipped: {exc}", file=sys.stderr)
    out = REPO / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2))
    lat = results["turn_latency"]
    print("| measure | value |\n|---|---|")
    print(f"| turn latency p50 ({lat['turns']} turns) | {lat['p50_ms']:.0f} ms |")
    print(f"| turn latency p95 | {lat['p95_ms']:.0f} ms |")
    for name, value in results["rtf"].items():
        print(f"| real-time factor, {name} | {value:.3f} |")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
