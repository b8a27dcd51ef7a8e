"""Mandarin single digits: what a spoken carrier does for one syllable heard alone.

A lone Mandarin digit is one syllable with no context, and Whisper base often writes
nothing for it. On the recorded digits of ../shared/speech/zh-CN (through the telephone
path and at 16 kHz), each clip is decoded as the IVR decodes a digit ask, then with a
carrier phrase said before it ("号码是", "the number is", by the synthetic caller's voice;
the answer is the digit written as a whole, or the last digit written), and said twice.
Then codes, ticket numbers and phone numbers read out digit by digit from the same
recordings (``ivr.qa.conditions.read_out``), over the phone, at their asks.

Writes bench/zh-digits.json and prints a table for the README.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.config import load_settings  # noqa: E402
from ivr.qa.conditions import read_out  # noqa: E402
from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.speech.asr.base import Engine  # noqa: E402
from ivr.speech.audio import Audio, read_audio, split_frames, telephone  # noqa: E402
from ivr.speech.engines import Engines  # noqa: E402
from ivr.speech.grammar import DigitRule, Grammar, GrammarBook  # noqa: E402

SPEECH = Path(os.environ.get("IVR_SHARED_SPEECH", REPO.parent / "shared" / "speech")) / "zh-CN"
CARRIER = "号码是"


def last_digit(grammar: Grammar, text: str) -> str | None:
    """The last digit written, whatever came before it (the carrier's words)."""
    for i in range(len(text), 0, -1):
        meant = grammar.interpret(text[i - 1 :])
        if meant is not None and meant.value is not None:
            return str(meant.value)
    return None


def main() -> None:
    with (SPEECH / "INDEX.tsv").open() as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "digit"]
    settings = load_settings()
    engines = Engines.from_settings(settings)
    whisper = engines.require("zh-CN")
    grammar = GrammarBook(REPO / "grammars", "zh-CN").get(
        "digits", commands=False, digits=DigitRule(1, 1)
    )
    carrier = caller_speech(CARRIER, locale="zh-CN")

    def with_carrier(clip: Audio) -> Audio:
        gap = np.zeros(clip.rate * 15 // 100, np.int16)
        said = [carrier.to_rate(clip.rate).samples, gap, clip.samples]
        return Audio(np.concatenate(said), clip.rate)

    def twice(clip: Audio) -> Audio:
        gap = np.zeros(clip.rate * 3 // 10, np.int16)
        return Audio(np.concatenate([clip.samples, gap, clip.samples]), clip.rate)

    def whole(text: str) -> str | None:
        meant = grammar.interpret(text)
        return None if meant is None else str(meant.value)

    wanted = {r["file"]: whole(r["text"]) for r in rows}
    assert None not in wanted.values(), "every recorded digit is a digit of the grammar"

    variants: dict[str, tuple[Callable[[Audio], Audio], Callable[[str], str | None]]] = {
        "as the IVR hears it": (lambda clip: clip, whole),
        f"carrier {CARRIER}, whole answer": (with_carrier, whole),
        f"carrier {CARRIER}, last digit": (with_carrier, lambda t: last_digit(grammar, t)),
        "said twice, last digit": (twice, lambda t: last_digit(grammar, t)),
    }
    results: dict[str, dict[str, float]] = {}
    for phone in (True, False):
        condition = "phone" if phone else "16 kHz"
        for name, (audio_of, answer_of) in variants.items():
            good = 0
            for r in rows:
                said = audio_of(read_audio(SPEECH / r["file"]).to_rate(16000))
                said = telephone(said) if phone else said  # the carrier too, on the line
                text, confidence = heard(whisper, said.samples, said.rate, grammar)
                sure = confidence >= settings.confidence_reject
                good += answer_of(text if sure else "") == wanted[r["file"]]
            results.setdefault(name, {})[condition] = good / len(rows)
            print(f"{condition} | {name}: {good} / {len(rows)}", flush=True)
    read = read_out_numbers(whisper, rows, settings.confidence_reject)
    engines.close()
    (REPO / "bench" / "zh-digits.json").write_text(
        json.dumps(
            {"n": len(rows), "results": results, "read out": read}, indent=2, ensure_ascii=False
        )
    )
    print("\n| Mandarin single digit (Whisper base) | phone | 16 kHz |\n|---|---|---|")
    for name, by in results.items():
        print(f"| {name} | {by['phone']:.2f} | {by['16 kHz']:.2f} |")
    print("\n| read out digit by digit, over the phone | " + " | ".join(PAUSES_S) + " |")
    print("|---|" + "---|" * len(PAUSES_S))
    for ask, by in read.items():
        print(f"| {ask} | " + " | ".join(f"{by[p]:.2f}" for p in PAUSES_S) + " |")


NUMBERS = 12  # of each kind
PAUSES_S = ("0.12", "0.3")  # quiet after each digit


def read_out_numbers(
    engine: Engine, rows: list[dict[str, str]], reject: float
) -> dict[str, dict[str, float]]:
    """Codes, ticket numbers and phone numbers read out digit by digit from the recorded
    digits (one speaker), through the phone path: the share heard whole at their ask."""
    book = GrammarBook(REPO / "grammars", "zh-CN")
    clips = {r["text"]: read_audio(SPEECH / r["file"]) for r in rows}
    rng = random.Random(7)
    out: dict[str, dict[str, float]] = {}
    for ask, length in (("verification_code", 6), ("ticket_number", 8), ("phone_number", 11)):
        grammar = book.get(ask)
        for pause in PAUSES_S:
            whole = 0
            for _ in range(NUMBERS):
                number = "".join(rng.choice("0123456789") for _ in range(length))
                if ask == "phone_number":  # a mainland mobile number
                    number = "1" + rng.choice("3589") + number[2:]
                words = [clips["零一二三四五六七八九"[int(d)]] for d in number]
                said = telephone(read_out(words, float(pause)))
                text, confidence = heard(engine, said.samples, said.rate, grammar)
                meant = grammar.interpret(text) if confidence >= reject else None
                whole += meant is not None and meant.value == number
            out.setdefault(ask, {})[pause] = whole / NUMBERS
            print(f"read out, {ask}, {pause} s: {whole} / {NUMBERS}", flush=True)
    return out


def heard(engine: Engine, samples: np.ndarray, rate: int, grammar: Grammar) -> tuple[str, float]:
    """One utterance streamed to the ask's recogniser and decoded when it ends."""
    rec = engine.recognizer(grammar, rate, {})
    for frame in split_frames(samples, rate):
        rec.accept(frame)
    hyp = rec.finish()
    return hyp.text, hyp.confidence


if __name__ == "__main__":
    main()
