"""The grammar decoder with many callers speaking at once: in the calls' process, or in hosts.

K call threads each stream utterances of the main menu (synthesised, through the phone
line) to the grammar decoder as fast as it takes them, asking for the partial result every
fifth frame as a call does, for 8 s of decoding. Reported per K: utterances decoded per
second (throughput) and the p95 of the time a call thread spends in one frame's
``accept()``/``partial()`` (the time its media would wait), for PocketSphinx in the calls'
process (it holds the interpreter lock) and in two host processes. Writes
bench/grammar.json; prints a table for the README.

    python bench/grammar.py
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.speech.asr.base import Engine  # noqa: E402
from ivr.speech.asr.hosted import HostedSphinxEngine  # noqa: E402
from ivr.speech.asr.hosts import DecoderHosts  # noqa: E402
from ivr.speech.asr.sphinx import SphinxEngine  # noqa: E402
from ivr.speech.audio import split_frames, telephone  # noqa: E402
from ivr.speech.grammar import GrammarBook  # noqa: E402

CALLERS = (1, 2, 4, 8)
SECONDS = 8.0
PHRASES = ("ticket status", "account recovery", "feedback", "live streaming")


def run(engine: Engine, callers: int, utterances: list[list[np.ndarray]]) -> dict[str, float]:
    grammar = GrammarBook(REPO / "grammars", "en-US").get("main_menu")
    done = [0] * callers
    stalls: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def caller(i: int) -> None:
        context: dict[str, object] = {}
        mine: list[float] = []
        n = i
        while time.monotonic() < stop:
            rec = engine.recognizer(grammar, 8000, context)
            for k, frame in enumerate(utterances[n % len(utterances)]):
                t0 = time.perf_counter()
                rec.accept(frame)
                if k % 5 == 0:
                    rec.partial()
                mine.append(time.perf_counter() - t0)
            rec.finish()
            done[i] += 1
            n += 1
        with lock:
            stalls.extend(mine)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {
        "callers": callers,
        "utterances_per_s": sum(done) / wall,
        "frame_p95_ms": float(np.percentile(stalls, 95)) * 1000,
    }


def main() -> None:
    utterances = [split_frames(telephone(caller_speech(p)).samples, 8000) for p in PHRASES]
    hosts = DecoderHosts("en-US", 2, 8)
    engines: dict[str, Engine] = {
        "in the calls' process": SphinxEngine(),
        "two host processes": HostedSphinxEngine("en-US", hosts),
    }
    results = []
    try:
        for where, engine in engines.items():
            engine.warm()
            for k in CALLERS:
                results.append({"where": where, **run(engine, k, utterances)})
    finally:
        hosts.close()
    (REPO / "bench" / "grammar.json").write_text(json.dumps(results, indent=2))
    print("| grammar decoder | callers at once | utterances decoded per second | frame p95 |")
    print("|---|---|---|---|")
    for r in results:
        print(
            f"| {r['where']} | {r['callers']} | {r['utterances_per_s']:.1f} "
            f"| {r['frame_p95_ms']:.2f} ms |"
        )


if __name__ == "__main__":
    main()
