"""Feedback classification: spoken items with known categories, through dictation and the
classifier, against the best constant guess. Writes bench/feedback.json; prints a table.

    python bench/feedback.py
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.services.feedback import CATEGORIES, FeedbackClassifier  # noqa: E402
from ivr.speech.asr.sphinx import SphinxEngine  # noqa: E402
from ivr.speech.audio import split_frames  # noqa: E402

RATE = 16000


def transcribe(engine: SphinxEngine, text: str) -> str:
    audio = caller_speech(text).to_rate(RATE)
    padded = np.concatenate(
        [np.zeros(RATE // 2, np.int16), audio.samples, np.zeros(RATE, np.int16)]
    )
    rec = engine.recognizer(None, RATE)
    for frame in split_frames(padded, RATE):
        rec.accept(frame)
    return rec.finish().text


def main() -> None:
    items = yaml.safe_load((REPO / "bench" / "data" / "feedback_en.yaml").read_text("utf-8"))
    classifier = FeedbackClassifier(REPO / "prompts", "en-US")
    engine = SphinxEngine()
    rows = []
    for label, texts in items.items():
        for text in texts:
            heard = transcribe(engine, text)
            rows.append(
                {
                    "label": label,
                    "text": text,
                    "heard": heard,
                    "from_speech": classifier.classify(heard).category,
                    "from_text": classifier.classify(text).category,
                }
            )
    n = len(rows)
    counts = collections.Counter(r["label"] for r in rows)
    baseline = max(counts.values()) / n
    speech = sum(r["from_speech"] == r["label"] for r in rows) / n
    text = sum(r["from_text"] == r["label"] for r in rows) / n
    per_category = {
        c: sum(r["from_speech"] == c for r in rows if r["label"] == c) / counts[c]
        for c in CATEGORIES
        if counts[c]
    }
    results = {
        "items": n,
        "accuracy_from_speech": speech,
        "accuracy_from_text": text,
        "constant_guess": baseline,
        "recall_from_speech": per_category,
        "rows": rows,
    }
    out = REPO / "bench" / "feedback.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"| feedback classification ({n} spoken items) | accuracy |\n|---|---|")
    print(f"| constant guess (best single category) | {baseline:.2f} |")
    print(f"| from the spoken item (dictation, then classifier) | {speech:.2f} |")
    print(f"| from the written item (classifier alone) | {text:.2f} |")
    print(
        "\nrecall per category from speech: "
        + ", ".join(f"{c} {v:.2f}" for c, v in per_category.items())
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
