"""What Whisper is shown at an ask, and the checks its text must pass.

Whisper transcribes rather than choosing among a grammar's phrases, so each ask steers it
with a prompt listing what the ask expects (the grammar's phrases, the digit words, or an
example digit string). Unsure, it copies that prompt, repeats a word, or loops on a sound:
these checks tell such text from a caller's answer.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

from ivr.speech.grammar import COMMAND_PREFIX, Grammar, normalize
from ivr.speech.understand import is_hanzi

MAX_PROMPT_CHARS: Final = 600
MAX_WORD_RUN: Final = 3  # "no, no, no" is a caller; a fourth "no" is Whisper looping
COMMAND_CONFIDENCE: Final = 0.68  # a global command needs average log-probability over about -1
# commands that take the caller away (to a person, to the menu): that bar always
LEAVING_COMMANDS: Final = frozenset({COMMAND_PREFIX + "agent", COMMAND_PREFIX + "main_menu"})


def grammar_prompt(grammar: Grammar | None, locale: str) -> str | None:
    """What the ask expects, written out: Whisper leans towards words it has just seen."""
    if grammar is None:
        return None
    chinese = locale.startswith("zh")
    sep = "，" if chinese else ", "  # noqa: RUF001 - Mandarin comma
    words: list[str] = []
    if grammar.digits is not None and grammar.digits.max > 1 and grammar.numbers.example:
        return grammar.numbers.example  # several digits: an example, written as wanted
    if grammar.digits is not None:
        seen: set[str] = set()
        for word, digit in grammar.digit_words.items():
            if digit not in seen:  # one word per digit: "zero, one, two, ..."
                seen.add(digit)
                words.append(word)
    else:
        # The ask's own answers, then (English) the global commands. A digit ask's prompt
        # holds digits alone: command phrases in it cost digits. Whisper base copies
        # Mandarin commands from its prompt when unsure ("主菜单" for 是的): answers only.
        own = [p for p, v in grammar.phrases.items() if not v.startswith(COMMAND_PREFIX)]
        words += own if chinese else own + [p for p in grammar.phrases if p not in own]
    if chinese:
        words = ["".join(w.split()) for w in words]
        if grammar.digits is not None:
            # digits written together, as a number is: shown a comma list, Whisper base wrote
            # a lone recorded digit as a list again (三 twice) or not at all, 5 of 10 right
            # over the phone; written together, 7 of 10 (9 of 10 at 16 kHz). Words stay a
            # comma list: apart by spaces, 是 came back as 是 是 是 and was dropped.
            sep = ""
    text = sep.join(dict.fromkeys(words))
    return (text[:MAX_PROMPT_CHARS] + ("。" if chinese else ".")) if text else None


def command_in_doubt(value: str, confidence: float, grammar: Grammar, prompt: str | None) -> bool:
    """A global command Whisper wrote too unsure to act on.

    Unsure, Whisper falls back on words of its prompt, and the English prompts list the
    global commands: a command written there needs average log-probability over about -1
    (the 30-call load test caught "agent", at -1.6, for "ticket status"). So does every
    command that takes the caller away, a person or the menu, wherever it was written. A
    command its prompt did not hold ("slower" asked of a Mandarin menu, whose prompt
    holds the menu's answers alone) is Whisper's own reading of the audio: the ordinary
    checks and bar apply, as for any answer.
    """
    if not value.startswith(COMMAND_PREFIX) or confidence >= COMMAND_CONFIDENCE:
        return False
    if value in LEAVING_COMMANDS or not prompt:
        return value in LEAVING_COMMANDS
    written = normalize(prompt).replace(" ", "")
    return any(
        phrase.replace(" ", "") in written for phrase, v in grammar.phrases.items() if v == value
    )


def collapse_repeats(text: str) -> str:
    """One word said once, written several times ("repeat, repeat", "no, no, no"): once.

    Whisper repeats a short answer it is unsure of. Not for digit asks: "five five" is two
    digits.
    """
    words = normalize(text).split()
    if any(is_hanzi(w) for w in words):
        return text  # Mandarin doubles characters in words of their own (谢谢, 看看)
    out: list[str] = []
    for word in words:
        if not out or out[-1] != word:
            out.append(word)
    return " ".join(out)


def loops(text: str, digit_words: dict[str, str] | None = None) -> bool:
    """One word written more than three times running: Whisper looping on a sound, not speech.

    Measured: keypad tones in line noise at a yes/no ask came back "No, no, no, no, no, no,
    no,". A caller says "no, no" or "no, no, no"; for digits "five five five five" is a
    number, so digit asks do not ask this, and asks whose answers may hold digits (a
    read-back's corrections) count only the words that are no digits (``digit_words``).
    """
    run = 1
    words = [
        w
        for w in normalize(text).split()
        if not digit_words or (w not in digit_words and not w.isdigit())
    ]
    for before, word in itertools.pairwise(words):
        run = run + 1 if word == before else 1
        if run > MAX_WORD_RUN:
            return True
    return False


def echoes_prompt(text: str, prompt: str | None, *, whole_items_too: bool = False) -> bool:
    """Whisper, unsure, copied a piece of its prompt that breaks off inside an item.

    An item whole is a real answer (a caller says a choice the prompt lists); a run of
    the prompt that starts or stops mid-item ("查询工" of 查询工单) is not. With
    ``whole_items_too`` (the example digit string of a digit ask) any run of two words or
    more is a copy.
    """
    if not prompt or not text:
        return False
    items = [normalize(i).split() for i in re.split(r"[,，.。]", prompt) if normalize(i)]  # noqa: RUF001
    said = normalize(text).split()
    flat = [t for item in items for t in item]
    if len(said) < 2:
        return False
    if whole_items_too:  # the example digit string: no piece of it is anybody's answer
        return any(flat[i : i + len(said)] == said for i in range(len(flat) - len(said) + 1))
    edges = {0, *itertools.accumulate(len(i) for i in items)}
    found = [i for i in range(len(flat) - len(said) + 1) if flat[i : i + len(said)] == said]
    return bool(found) and all(i not in edges or i + len(said) not in edges for i in found)
