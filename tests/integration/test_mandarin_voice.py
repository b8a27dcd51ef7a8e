"""Mandarin prompts are spoken as Mandarin: never through espeak-ng's English reading.

espeak-ng marks every switch to another language in its phoneme trace (``(en)``).
The voice that speaks zh-CN must read every prompt, every escalation variant, every
knowledge article and every digit read-back without one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ivr.config import Voice
from ivr.dialog.prompts import PromptBook, SpokenDigits
from ivr.services.knowledge import KnowledgeBase
from ivr.speech.tts import Segment
from ivr.speech.voices import english_reading_warning, resolve_voice, voice_for

REPO = Path(__file__).resolve().parents[2]
LANGUAGE_SWITCH = re.compile(r"\((?!cmn\))[a-z-]+\)")  # "(en)", but not the switch back "(cmn)"


def _sample(name: str) -> object:
    if name in ("number", "code", "last4"):
        return SpokenDigits({"number": "48213377", "code": "482913", "last4": "8000"}[name])
    if name in ("position", "total"):
        return 3
    return "视频"


def _spoken_texts() -> list[tuple[str, str]]:
    """(where, text) for everything the IVR says in zh-CN, placeholders filled."""
    book = PromptBook(REPO / "prompts", "zh-CN")
    out: list[tuple[str, str]] = []
    for pid, variants in sorted(book.prompts.items()):
        if pid.startswith("sms_"):
            continue  # text messages are read, not spoken
        params = {name: _sample(name) for name in book.placeholders(pid)}
        params["brand"] = "流管视频"
        for variant in variants:
            speech = book.speech(pid, variant=variant, params=params, voice=Voice())
            out += [(f"{pid}/{variant}", p.text) for p in speech.parts if isinstance(p, Segment)]
    for article in KnowledgeBase(REPO / "prompts", "zh-CN").articles.values():
        out += [(f"knowledge/{article.id}", t) for t in [article.spoken(), *article.steps]]
    return out


def _phonemes(voice: str, text: str) -> str:
    proc = subprocess.run(
        ["espeak-ng", "-v", voice, "-q", "-x", text],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout


def test_the_zh_cn_voice_reads_every_prompt_as_mandarin() -> None:
    voice = voice_for(Voice(), "zh-CN")
    assert english_reading_warning("zh-CN", voice) is None
    texts = _spoken_texts()
    assert len(texts) > 100  # prompts, variants, articles and steps
    switched = [
        (where, text, trace)
        for where, text in texts
        if LANGUAGE_SWITCH.search(trace := _phonemes(voice, text))
    ]
    assert not switched, f"{len(switched)} zh-CN texts read with another language: {switched[:3]}"


def test_the_english_reading_voice_is_caught() -> None:
    # the check above would fail on espeak-ng 1.51's "cmn" voice: it proves the check can fail
    trace = _phonemes("cmn", "零一二三")
    assert LANGUAGE_SWITCH.search(trace)
    assert english_reading_warning("zh-CN", "cmn") is not None
    assert resolve_voice("zh-CN", "auto") != "cmn"
