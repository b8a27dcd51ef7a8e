"""From free text to a grammar's value: what a transcribing recogniser heard, understood.

Grammar decoders (PocketSphinx, Vosk) return one of the grammar's phrases; a
transcriber (Whisper) writes whatever it heard: "I forgot my password.", "It's
138 0013 8000", "double five", "巴" for 八. This module maps such text onto the
grammar, and anything that maps to no single value is no match, so speech outside
the grammar is rejected by construction:

* the whole text is a phrase, or exactly one value's phrases occur in it as whole
  words (a longer phrase hides the shorter ones inside it: 不是 is not 是);
* a global command only counts when the text is that command and nothing else of
  substance (clear evidence: "agent", "I want to talk to a person");
* digit asks take digit words, figures, "oh", "double five", "twenty one" and
  "eight hundred" (``_numbers.yaml``), and in Mandarin any character that sounds
  like a digit (八 and 巴 are both ``ba``), by pinyin.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from ivr.errors import ConfigError

if TYPE_CHECKING:
    from ivr.speech.grammar import Grammar, Interpretation

_FIGURES: Final = re.compile(r"\d")
_HANZI_CHAR: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD_BREAKS: Final = re.compile(r"[^\w']+")  # spaces and punctuation, of any script
# words that carry no answer of their own around a command ("I want to talk to an agent")
MAX_COMMAND_EXTRA_WORDS: Final = 5
# a Mandarin answer inside a longer text: its phrases must make this share of the characters
# ("我想查一下工单状态" is one; 要 in "明天我要去医院看病" is none)
MIN_MANDARIN_SHARE: Final = 1 / 3
# share of pinyin letters that may differ (Mandarin): 终古 (zhonggu) is 中国 (zhongguo), but
# a third is too far (识别 shibie is no 是的 shide, 下午 xiawu no 跳舞 tiaowu): on recorded
# words that answer nothing, 0.34 took 22 more as answers than 0.30, and no more right ones
MAX_SOUND_DISTANCE: Final = 0.3
MIN_SOUND_MARGIN: Final = 0.15  # how much nearer than any other value the nearest must be
MIN_SPELLING_WORDS: Final = 3  # English phrases matched by spelling distance
MAX_SPELLING_DISTANCE: Final = 0.25


@dataclass(frozen=True)
class NumberWords:
    """How a locale says numbers beyond its digit words (``grammars/<locale>/_numbers.yaml``)."""

    aliases: dict[str, str] = field(default_factory=dict)
    repeat: dict[str, int] = field(default_factory=dict)
    teens: dict[str, str] = field(default_factory=dict)
    tens: dict[str, str] = field(default_factory=dict)
    hundred: tuple[str, ...] = ()
    # a digit string written the way a transcriber should write what callers say: steers
    # free-text recognisers at asks for several digits (phone numbers, codes, tickets)
    example: str = ""

    @classmethod
    def load(cls, path: Path) -> NumberWords:
        if not path.exists():
            return cls()
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping")
        unknown = set(data) - {"aliases", "repeat", "teens", "tens", "hundred", "example"}
        if unknown:
            raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
        try:
            return cls(
                aliases={str(k): str(v) for k, v in (data.get("aliases") or {}).items()},
                repeat={str(k): int(v) for k, v in (data.get("repeat") or {}).items()},
                teens={str(k): str(v) for k, v in (data.get("teens") or {}).items()},
                tens={str(k): str(v) for k, v in (data.get("tens") or {}).items()},
                hundred=tuple(str(w) for w in data.get("hundred") or ()),
                example=str(data.get("example") or ""),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc


# --- Mandarin by sound -----------------------------------------------------------------------
def is_hanzi(token: str) -> bool:
    return bool(_HANZI_CHAR.fullmatch(token))


def syllables(text: str) -> int:
    """The Mandarin syllables written in ``text``: one a character."""
    from ivr.speech.grammar import normalize

    return sum(is_hanzi(t) for t in normalize(text).split())


@functools.cache
def pinyin(token: str) -> str:
    """A Chinese character's syllable without tone (八 and 巴 → "ba"); other tokens unchanged."""
    if not is_hanzi(token):
        return token
    from pypinyin import lazy_pinyin

    return lazy_pinyin(token)[0]


def _sounds(tokens: list[str]) -> list[str]:
    return [pinyin(t) for t in tokens]


def _distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings of pinyin letters."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def spelling_distance(a: str, b: str) -> float:
    """The share of letters to change to spell ``b`` from ``a``: 0 the same, 1 nothing alike."""
    return _distance(a, b) / max(len(a), len(b), 1)


def nearest_by_sound(tokens: list[str], phrases: dict[str, str]) -> str | None:
    """The value of the one Mandarin phrase that sounds nearly like the whole answer.

    A transcriber writes a short Mandarin word with characters of a near sound (中国 as
    终古 or 宋国, 语言 as 许言). The answer is taken when its syllables spell within a
    third of the letters of exactly one phrase of the same length (±1 syllable), and
    the next phrase is clearly further away.
    """
    heard = [pinyin(t) for t in tokens if is_hanzi(t)]
    if not heard or len(heard) != len(tokens):
        return None
    spelt = "".join(heard)
    scored: list[tuple[float, str]] = []
    for phrase, value in phrases.items():
        words = phrase.split()
        if not all(is_hanzi(w) for w in words) or abs(len(words) - len(heard)) > 1:
            continue
        target = "".join(pinyin(w) for w in words)
        scored.append((spelling_distance(spelt, target), value))
    scored.sort()
    if not scored or scored[0][0] > MAX_SOUND_DISTANCE:
        return None
    runner_up = next((d for d, v in scored[1:] if v != scored[0][1]), 1.0)
    return scored[0][1] if runner_up - scored[0][0] >= MIN_SOUND_MARGIN else None


def nearest_by_spelling(tokens: list[str], phrases: dict[str, str]) -> str | None:
    """The value of the one long English phrase spelt nearly like the whole answer.

    A transcriber splits or blurs a longer answer ("I did it to get it" for "I didn't get
    it"). Only answers and phrases of three words or more, never a global command, within
    a quarter of the letters, and clearly nearer than any other value: a short word is too
    easily near another, and a person is only called for on a clear request.
    """
    if len(tokens) < MIN_SPELLING_WORDS or any(is_hanzi(t) for t in tokens):
        return None  # "thank you" is two letters from "no thank you"
    spelt = "".join(tokens)
    scored: list[tuple[float, str]] = []
    for phrase, value in phrases.items():
        words = phrase.split()
        if len(words) < MIN_SPELLING_WORDS or abs(len(words) - len(tokens)) > 2:
            continue
        target = "".join(words)
        scored.append((spelling_distance(spelt, target), value))
    scored.sort()
    if not scored or scored[0][0] > MAX_SPELLING_DISTANCE:
        return None
    from ivr.speech.grammar import COMMAND_PREFIX

    if scored[0][1].startswith(COMMAND_PREFIX):
        return None
    runner_up = next((d for d, v in scored[1:] if v != scored[0][1]), 1.0)
    return scored[0][1] if runner_up - scored[0][0] >= MIN_SOUND_MARGIN else None


# --- digits ----------------------------------------------------------------------------------
def digits_in(
    tokens: list[str],
    digit_words: dict[str, str],
    numbers: NumberWords,
    ends: frozenset[int] = frozenset(),
) -> str | None:
    """The digit string the tokens say, or None when a token is neither a number nor filler.

    Filler words may stand before the number ("my number is ..."), never inside it.
    ``ends``: the tokens that end a piece of the text as written (``piece_ends``), for
    ``_ends_a_word``.
    """
    by_sound = {pinyin(w): d for w, d in digit_words.items() if is_hanzi(w)}
    out = ""
    started = False
    pending_repeat = 1
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        piece: str | None = None
        if tok.isdigit():
            piece = tok
        elif tok in digit_words:
            piece = digit_words[tok]
        elif tok in numbers.aliases and (
            started or (nxt is not None and _is_number(nxt, digit_words, numbers))
        ):
            piece = numbers.aliases[tok]
        elif (
            is_hanzi(tok)
            and pinyin(tok) in by_sound
            and not _ends_a_word(tokens, i, ends, digit_words, numbers)
        ):
            piece = by_sound[pinyin(tok)]
        elif tok in numbers.teens:
            piece = numbers.teens[tok]
        elif tok in numbers.tens:
            piece = numbers.tens[tok]
            if nxt is not None and nxt in digit_words and digit_words[nxt] != "0":
                piece += digit_words[nxt]
                i += 1
            else:
                piece += "0"
        elif tok in numbers.repeat:
            pending_repeat = numbers.repeat[tok]
            i += 1
            continue
        elif tok in numbers.hundred and out:
            after = tokens[i + 1 :]
            follows = bool(after) and _is_number(after[0], digit_words, numbers)
            out += "" if follows else "00"
            if follows and after[0] in digit_words:
                out += "0"  # "eight hundred five" is 805
            i += 1
            continue
        if piece is None:
            if started:
                return None  # words inside a number: not a number answer
            i += 1
            continue
        started = True
        out += piece * pending_repeat if len(piece) == 1 else piece
        pending_repeat = 1
        i += 1
    return out or None


def _ends_a_word(
    tokens: list[str],
    i: int,
    ends: frozenset[int],
    digit_words: dict[str, str],
    numbers: NumberWords,
) -> bool:
    """Whether the character at ``i``, which only sounds like a digit, is the end of a word of
    other characters: written after a character that is no number, in the same piece, and
    followed by no number there (以 of 可以 before the number, 要 in 需要, 午 in 下午). A caller's
    "可以" before the number is no digit of it; 巴 in "号码是巴三..." still is one."""
    if i == 0 or (i - 1) in ends:
        return False
    before = tokens[i - 1]
    if not is_hanzi(before) or is_number_word(before, digit_words, numbers):
        return False
    last = i in ends or i + 1 == len(tokens)
    return last or not is_number_word(tokens[i + 1], digit_words, numbers)


def piece_ends(text: str) -> frozenset[int]:
    """The token indexes (as ``normalize`` splits ``text``) that end a piece written between
    spaces or marks."""
    from ivr.speech.grammar import normalize

    ends: set[int] = set()
    start = 0
    for chunk in _WORD_BREAKS.split(text):
        count = len(normalize(chunk).split())
        if count:
            start += count
            ends.add(start - 1)
    return frozenset(ends)


def is_number_word(tok: str, digit_words: dict[str, str], numbers: NumberWords) -> bool:
    """A token that is part of a number and nothing else (a figure, a digit word, "oh",
    "double", "hundred", a character that sounds like a digit)."""
    return (
        _is_number(tok, digit_words, numbers)
        or tok in numbers.aliases
        or tok in numbers.hundred
        or (is_hanzi(tok) and pinyin(tok) in {pinyin(w) for w in digit_words if is_hanzi(w)})
    )


def _is_number(tok: str, digit_words: dict[str, str], numbers: NumberWords) -> bool:
    return (
        tok.isdigit()
        or tok in digit_words
        or tok in numbers.teens
        or tok in numbers.tens
        or tok in numbers.repeat
    )


# --- phrases ---------------------------------------------------------------------------------
def _occurrences(tokens: list[str], phrase: list[str]) -> list[tuple[int, int]]:
    n = len(phrase)
    return [(i, i + n) for i in range(len(tokens) - n + 1) if tokens[i : i + n] == phrase]


def phrase_matches(tokens: list[str], phrases: dict[str, str]) -> list[tuple[int, int, str]]:
    """(start, end, value) of every phrase in the tokens, longer phrases hiding shorter ones.

    Chinese characters are compared by sound, so a homophone written by the recogniser
    (吃别 for 识别) still matches. A phrase of one syllable is found by sound only as the
    whole answer: inside a sentence its syllable is too common (是 is shi, as are 市, 视 and
    十: "广州市房地产" or "我的视频" is no "yes").
    """
    sounds = _sounds(tokens)
    found: list[tuple[int, int, str]] = []
    for phrase, value in phrases.items():
        words = phrase.split()
        by_sound = any(is_hanzi(w) for w in words) and (len(words) > 1 or len(tokens) == 1)
        target = _sounds(words) if by_sound else words
        hay = sounds if by_sound else tokens
        found += [(s, e, value) for s, e in _occurrences(hay, target)]
    found.sort(key=lambda m: (m[0], -(m[1] - m[0])))
    kept: list[tuple[int, int, str]] = []
    for m in sorted(found, key=lambda m: -(m[1] - m[0])):
        if not any(k[0] <= m[0] and m[1] <= k[1] for k in kept):
            kept.append(m)
    return sorted(kept)


def _inside_words(text: str) -> set[int]:
    """The token indexes (as ``normalize`` splits ``text``) of Chinese characters written
    inside a longer word: between two marks or spaces, with other characters."""
    from ivr.speech.grammar import normalize

    inside: set[int] = set()
    start = 0
    for chunk in _WORD_BREAKS.split(text):
        tokens = normalize(chunk).split()
        if len(tokens) > 1:
            inside |= {start + i for i, t in enumerate(tokens) if is_hanzi(t)}
        start += len(tokens)
    return inside


def understand(grammar: Grammar, text: str) -> Interpretation | None:
    """The one value ``text`` stands for under ``grammar``, or None (no match)."""
    from ivr.speech.grammar import COMMAND_PREFIX, Interpretation, normalize

    norm = normalize(text)
    if not norm:
        return None
    if norm in grammar.phrases:
        return Interpretation(grammar.phrases[norm])
    tokens = norm.split()
    sounds = " ".join(_sounds(tokens))
    for phrase, value in grammar.phrases.items():  # the whole answer by sound (Mandarin)
        if " ".join(_sounds(phrase.split())) == sounds:
            return Interpretation(value)
    if any(is_hanzi(t) for t in tokens) and grammar.digits is None:
        near = nearest_by_sound(tokens, grammar.phrases)
        if near is not None:
            return Interpretation(near)
    if grammar.digits is not None:
        digits = digits_in(tokens, grammar.digit_words, grammar.numbers, piece_ends(text))
        if digits is not None:
            return Interpretation(digits, digits) if grammar.digits.accepts(digits) else None
    # a one-character answer counts where it was written as a word of its own (是 after 嗯
    # and a comma), not as a character of a longer word (行 in 银行, "bank": there it is hang)
    matches = phrase_matches(tokens, grammar.phrases)
    if any(e - s == 1 for s, e, _ in matches):
        inside = _inside_words(text)
        matches = [(s, e, v) for s, e, v in matches if e - s > 1 or s not in inside]
    values = {v for _, _, v in matches}
    if not values:
        near = nearest_by_spelling(tokens, grammar.phrases)
        return None if near is None else Interpretation(near)
    if len(values) != 1:
        return None
    value = values.pop()
    covered = sum(e - s for s, e, _ in matches)
    if value.startswith(COMMAND_PREFIX) and len(tokens) - covered > MAX_COMMAND_EXTRA_WORDS:
        return None  # a command buried in a longer sentence is no clear request
    hanzi = sum(is_hanzi(t) for t in tokens)
    if hanzi and covered < MIN_MANDARIN_SHARE * hanzi:
        return None  # a sentence with a short answer's characters in it, said of something else
    return Interpretation(value)


def bare_answer(grammar: Grammar, text: str) -> Interpretation | None:
    """The value ``text`` stands for when it is the answer and nothing else.

    For a recogniser's second guess: "five" or "four four seven", never a sentence with a
    grammar word in it ("no weather has been very cold" for "the weather has been ...").
    """
    from ivr.speech.grammar import normalize

    meant = understand(grammar, text)
    if meant is None:
        return None
    tokens = normalize(text).split()
    if meant.digits is not None and grammar.digits is not None:
        bare = all(is_number_word(t, grammar.digit_words, grammar.numbers) for t in tokens)
        return meant if bare else None
    matches = phrase_matches(tokens, grammar.phrases)
    covered = sum(e - s for s, e, _ in matches)
    whole = " ".join(tokens) in grammar.phrases or covered == len(tokens)
    return meant if whole or nearest_by_sound(tokens, grammar.phrases) else None
