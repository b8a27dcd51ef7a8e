"""PocketSphinx on real human recordings (../shared/speech, see its README for sources).

Floors: measured accuracy minus a margin. Measured on this model (README, Accuracy):
the numbers are printed by the benchmark too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ivr.speech.audio import read_audio, telephone
from tests.conftest import SHARED_SPEECH
from tests.helpers import recognise

pytestmark = pytest.mark.skipif(
    not (SHARED_SPEECH / "INDEX.tsv").exists(), reason="shared speech recordings not present"
)

DIGITS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}


def _rows(words: set[str]) -> list[dict[str, str]]:
    with (SHARED_SPEECH / "INDEX.tsv").open() as fh:
        return [r for r in csv.DictReader(fh, delimiter="\t") if r["word"] in words]


def yes_no_accuracy(sphinx, grammars, *, phone: bool = False) -> float:  # type: ignore[no-untyped-def]
    grammar = grammars.get("yes_no", commands=False)
    rows = _rows({"yes", "no"})
    good = 0
    for r in rows:
        audio = read_audio(SHARED_SPEECH / r["file"])
        if phone:
            audio = telephone(audio)
        hyp = recognise(sphinx, grammar, audio, 8000 if phone else 16000)
        interp = grammar.interpret(hyp.text)
        good += interp is not None and interp.value == r["word"]
    return good / len(rows)


def digit_accuracy(sphinx, grammars, *, sources: tuple[str, ...], limit: int) -> float:  # type: ignore[no-untyped-def]
    from ivr.speech.grammar import DigitRule

    grammar = grammars.get("digits", commands=False, digits=DigitRule(1, 1))
    rows = [r for r in _rows(set(DIGITS)) if r["file"].split("/")[0] in sources][:limit]
    good = 0
    for r in rows:
        audio = read_audio(SHARED_SPEECH / r["file"])
        rate = 8000 if audio.rate == 8000 else 16000
        hyp = recognise(sphinx, grammar, audio, rate)
        good += grammar.digits_of(hyp.text) == DIGITS[r["word"]]
    return good / len(rows)


def test_yes_no_recordings(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    assert yes_no_accuracy(sphinx, grammars) >= 0.85  # measured 0.96


def test_yes_no_recordings_over_the_phone(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    assert yes_no_accuracy(sphinx, grammars, phone=True) >= 0.72  # measured 0.79


def test_digit_recordings_wideband(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    assert (
        digit_accuracy(sphinx, grammars, sources=("speech_commands_v0.01_vinsis",), limit=50)
        >= 0.68
    )  # measured 0.80


def test_digit_recordings_narrowband(sphinx, grammars) -> None:  # type: ignore[no-untyped-def]
    assert digit_accuracy(sphinx, grammars, sources=("fsdd",), limit=120) >= 0.56  # measured 0.66


if __name__ == "__main__":
    from ivr.speech.asr.sphinx import SphinxEngine
    from ivr.speech.grammar import GrammarBook

    e = SphinxEngine()
    g = GrammarBook(Path(__file__).resolve().parents[2] / "grammars", "en-US")
    print("yes/no 16k", yes_no_accuracy(e, g))
    print("yes/no phone", yes_no_accuracy(e, g, phone=True))
    print(
        "digits speech_commands",
        digit_accuracy(e, g, sources=("speech_commands_v0.01_vinsis",), limit=50),
    )
    print("digits fsdd 8k", digit_accuracy(e, g, sources=("fsdd",), limit=120))
