"""Corrections at a read-back: "no, it ends in 8 0 0 0", "no, the third digit is five".

At every read-back of a number (phone number, code, ticket) the caller may say more than
yes or no: a correction in one breath. Three forms, in each locale's words
(``grammars/<locale>/_corrections.yaml``):

* the tail: "it ends in 8 0 0 0", 最后四位是8000 (keys: ``*`` then the last digits);
* one position: "the third digit is five", "the last digit is seven", 第三位是5;
* the whole number again: "1 3 8 ...", 不对 138... (keys: the whole number).

This module parses what was heard (recognised text, or keys) into a :class:`Correction`
and applies it to the number read back; a correction that does not fit the number (a
tail longer than the number, a sixth digit of a four-digit number, a whole number outside
the length rules) is no correction: the ask counts it as no match. The forms also extend
the read-back's yes/no grammar (:class:`CorrectionForms` is a grammar extension), so the
grammar decoder and Whisper hear them.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ivr.datafiles import read_yaml
from ivr.errors import ConfigError
from ivr.speech.grammar import DigitRule, Interpretation, normalize
from ivr.speech.understand import digits_in, is_hanzi, is_number_word, pinyin

if TYPE_CHECKING:
    from ivr.speech.grammar import Grammar

CORRECTION: Final = "correction"  # the value of a read-back answer that corrects the number
LAST: Final = -1  # the position of "the last digit"
MIN_WHOLE_DIGITS: Final = 3  # "no, oh" is a no (a decoder's stray digit), not a number
TAIL_KEY: Final = "*"
FORMS_FILE: Final = "_corrections.yaml"
_SLOT: Final = re.compile(r"(\{\w+\})")
SLOTS: Final = frozenset({"{digits}", "{digit}", "{nth}", "{count}"})


class Kind(enum.StrEnum):
    TAIL = "tail"
    POSITION = "position"
    WHOLE = "whole"


@dataclass(frozen=True)
class Correction:
    """What the caller said is wrong with the number, and what it should be."""

    kind: Kind
    digits: str
    position: int | None = None  # 1-based, or LAST; for Kind.POSITION

    def apply(self, number: str, rule: DigitRule) -> str | None:
        """The corrected number, or None when the correction does not fit it."""
        if not self.digits.isdigit():
            return None
        if self.kind is Kind.WHOLE:
            return self.digits if rule.accepts(self.digits) else None
        if self.kind is Kind.TAIL:
            if len(self.digits) > len(number):
                return None
            return number[: len(number) - len(self.digits)] + self.digits
        if self.position is None or len(self.digits) != 1:
            return None
        index = len(number) - 1 if self.position == LAST else self.position - 1
        if not 0 <= index < len(number):
            return None
        return number[:index] + self.digits + number[index + 1 :]


def from_keys(keys: str) -> Correction | None:
    """Keys at a read-back that are more than one yes/no key: ``*`` and the tail, or the
    whole number. ``#`` only ends the entry."""
    keys = keys.rstrip("#")
    if keys.startswith(TAIL_KEY) and keys[1:].isdigit():
        return Correction(Kind.TAIL, keys[1:])
    if keys.isdigit():
        return Correction(Kind.WHOLE, keys)
    return None


@dataclass(frozen=True)
class Target:
    """The number a read-back asks about, and the length rules a corrected one must keep."""

    number: str
    rule: DigitRule

    def may_be_keyed(self, keys: str) -> bool:
        """Keys so far may still become a keyed correction (``*`` and a tail no longer than
        the number, or a whole number no longer than the rules allow)."""
        if keys.startswith(TAIL_KEY):
            tail = keys[len(TAIL_KEY) :]
            return (not tail or tail.isdigit()) and len(tail) <= len(self.number)
        return keys.isdigit() and len(keys) <= self.rule.max


# --- the spoken forms ----------------------------------------------------------------------
Template = tuple[str, ...]  # words and slots ("{digits}")


def _template(text: str, where: str) -> Template:
    out: list[str] = []
    for piece in _SLOT.split(text):
        if _SLOT.fullmatch(piece):
            if piece not in SLOTS:
                raise ConfigError(f"{where}: unknown slot {piece} (expected {sorted(SLOTS)})")
            out.append(piece)
        else:
            out.extend(normalize(piece).split())
    if not out:
        raise ConfigError(f"{where}: empty form")
    return tuple(out)


@dataclass(frozen=True)
class CorrectionForms:
    """One locale's ways of correcting a number (``grammars/<locale>/_corrections.yaml``)."""

    lead: tuple[Template, ...]
    tail: tuple[Template, ...]
    position: tuple[Template, ...]
    whole: tuple[Template, ...]
    ordinals: tuple[tuple[str, int], ...]
    counts: tuple[tuple[str, int], ...]
    example: str = ""
    rule: DigitRule | None = None  # the rules of the numbers these forms hear corrected

    @classmethod
    def load(cls, path: Path) -> CorrectionForms:
        data: Any = read_yaml(path, "correction forms") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
        known = {"lead", "tail", "position", "whole", "ordinals", "counts", "example"}
        if set(data) - known:
            raise ConfigError(f"{path}: unknown keys {sorted(set(data) - known)}")

        def forms(section: str) -> tuple[Template, ...]:
            items = data.get(section) or []
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{path}: {section}: expected a list of phrases")
            return tuple(_template(i, f"{path}: {section}") for i in items)

        def numbers(section: str) -> tuple[tuple[str, int], ...]:
            items = data.get(section) or {}
            if not isinstance(items, dict):
                raise ConfigError(f"{path}: {section}: expected a mapping of words to numbers")
            try:
                return tuple((normalize(str(k)), int(v)) for k, v in items.items())
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: {section}: {exc}") from exc

        made = cls(
            lead=forms("lead"),
            tail=forms("tail"),
            position=forms("position"),
            whole=forms("whole"),
            ordinals=numbers("ordinals"),
            counts=numbers("counts"),
            example=str(data.get("example") or ""),
        )
        for section, templates, slot in (
            ("tail", made.tail, "{digits}"),
            ("position", made.position, "{digit}"),
            ("whole", made.whole, "{digits}"),
        ):
            for t in templates:
                if t.count(slot) != 1:
                    raise ConfigError(f"{path}: {section}: {' '.join(t)!r} needs one {slot}")
        if any(s in SLOTS for t in made.lead for s in t):
            raise ConfigError(f"{path}: lead: no slots in the words before a correction")
        return made

    # --- parsing ---------------------------------------------------------------------------
    def parse(self, text: str, grammar: Grammar) -> Correction | None:
        """The correction ``text`` says, or None (it says none, or not only one)."""
        tokens = normalize(text).split()
        rest = self._after_lead(tokens)
        if not rest:
            return None
        for kind, templates in (
            (Kind.TAIL, self.tail),
            (Kind.POSITION, self.position),
            (Kind.WHOLE, self.whole),
        ):
            for template in templates:
                slots = _match(template, rest, self, grammar)
                if slots is None:
                    continue
                found = _correction(kind, slots)
                if found is not None:
                    return found
        return None

    def _after_lead(self, tokens: list[str]) -> list[str]:
        """The tokens after any words that only say "no" (lead phrases, longest first)."""
        leads = sorted(self.lead, key=len, reverse=True)
        moved = True
        while tokens and moved:
            moved = False
            for lead in leads:
                if _same(tokens[: len(lead)], lead):
                    tokens = tokens[len(lead) :]
                    moved = True
                    break
        return tokens

    # --- the grammar extension ---------------------------------------------------------------
    def interpret(self, grammar: Grammar, text: str) -> Interpretation | None:
        found = self.parse(text, grammar)
        if found is None:
            return None
        return Interpretation(CORRECTION, found.digits, found)

    def unusual(self, meant: Interpretation) -> bool:
        """Whether a correction says the number again whole in a shape such numbers seldom
        have (a digit too many). A tail or one digit is not judged: the forms know the
        number's rules, not the number (grammars are cached, read-back numbers are not)."""
        found, rule = meant.detail, self.rule
        if not isinstance(found, Correction) or found.kind is not Kind.WHOLE or rule is None:
            return False
        return rule.accepts(found.digits) and not rule.is_usual(found.digits)

    def is_complete(self, grammar: Grammar, partial: str) -> bool | None:
        """A lead alone ("no") or a correction may go on: not complete; otherwise no opinion."""
        tokens = normalize(partial).split()
        if tokens and not self._after_lead(tokens):
            return False
        return False if self.parse(partial, grammar) is not None else None

    def words(self) -> set[str]:
        """The words a grammar decoder must know (figures such as "3rd" are for transcribers)."""
        found = {w for t in self.lead + self.tail + self.position + self.whole for w in t}
        found |= {w for pairs in (self.ordinals, self.counts) for k, _ in pairs for w in k.split()}
        return {w for w in found - SLOTS if _jsgf_word(w)}

    def vosk_phrases(self) -> list[str]:
        """Word runs of every form (Vosk strings phrases together)."""
        runs: set[str] = {" ".join(t) for t in self.lead}
        for t in self.tail + self.position + self.whole:
            run: list[str] = []
            for w in (*t, "{digits}"):
                if w in SLOTS:
                    if run:
                        runs.add(" ".join(run))
                    run = []
                else:
                    run.append(w)
        runs |= {k for pairs in (self.ordinals, self.counts) for k, _ in pairs}
        return sorted(runs)

    def jsgf_rules(self, digit_words: dict[str, str]) -> tuple[list[str], str]:
        """JSGF rules for the forms, and the alternative the answer rule adds."""

        def words(items: list[str]) -> str:
            return " | ".join(sorted(set(items)))

        digits = words(list(digit_words))
        rules = [
            f"<c_digit> = {digits};",
            "<c_digits> = <c_digit>+;",
            "<c_number> = " + "<c_digit> " * (MIN_WHOLE_DIGITS - 1) + "<c_digit>+;",
            f"<c_nth> = {words([k for k, _ in self.ordinals if _jsgf_word(k)])};",
            f"<c_count> = {words([k for k, _ in self.counts if _jsgf_word(k)])};",
        ]
        slot_rule = {
            "{digits}": "<c_digits>",
            "{digit}": "<c_digit>",
            "{nth}": "<c_nth>",
            "{count}": "<c_count>",
        }
        forms = [
            " ".join(slot_rule.get(w, w) for w in t)
            for t in self.tail + self.position
            if all(w in SLOTS or _jsgf_word(w) for w in t)
        ]
        slot_rule["{digits}"] = "<c_number>"
        forms += [" ".join(slot_rule.get(w, w) for w in t) for t in self.whole]
        leads = [" ".join(t) for t in self.lead]
        rules.append(f"<c_lead> = {words(leads)};")
        rules.append(f"<c_form> = {words(forms)};")
        return rules, "[<c_lead>] <c_form>"


def _jsgf_word(word: str) -> bool:
    return not any(ch.isdigit() for ch in word)  # "3rd" is no dictionary word


def load_forms(grammars_dir: Path, locale: str) -> CorrectionForms | None:
    """The locale's correction forms (loaded once), or None: its read-backs hear only yes
    and no by speech (keyed corrections need no words)."""
    return _load_forms(grammars_dir / locale / FORMS_FILE)


@functools.cache
def _load_forms(path: Path) -> CorrectionForms | None:
    return CorrectionForms.load(path) if path.exists() else None


# --- matching ------------------------------------------------------------------------------
def _same(tokens: list[str], words: tuple[str, ...] | list[str]) -> bool:
    """Word for word; Chinese characters by sound (a transcriber writes homophones)."""
    if len(tokens) != len(words):
        return False
    for t, w in zip(tokens, words, strict=True):
        if t == w:
            continue
        if is_hanzi(t) and is_hanzi(w) and pinyin(t) == pinyin(w):
            continue
        return False
    return True


def _match(
    template: Template, tokens: list[str], forms: CorrectionForms, grammar: Grammar
) -> dict[str, Any] | None:
    """Slot values when ``tokens`` say ``template`` exactly, else None."""
    if not template:
        return {} if not tokens else None
    head, rest = template[0], template[1:]
    if head not in SLOTS:
        if not tokens or not _same(tokens[:1], [head]):
            return None
        return _match(rest, tokens[1:], forms, grammar)
    for end in range(1, len(tokens) + 1):
        value = _slot(head, tokens[:end], forms, grammar)
        if value is None:
            continue
        after = _match(rest, tokens[end:], forms, grammar)
        if after is not None:
            return {head: value, **after}
    return None


def _slot(slot: str, tokens: list[str], forms: CorrectionForms, grammar: Grammar) -> Any:
    if slot in ("{digits}", "{digit}"):
        said = _digits(tokens, grammar)
        if said is None or (slot == "{digit}" and len(said) != 1):
            return None
        return said
    table = dict(forms.ordinals if slot == "{nth}" else forms.counts)
    joined = " ".join(tokens)  # the table's words are normalised the same way (十一: "十 一")
    if joined in table:
        return table[joined]
    if len(tokens) == 1 and tokens[0].isdigit():
        return int(tokens[0])
    by_sound = {" ".join(pinyin(w) for w in k.split()): v for k, v in table.items()}
    return by_sound.get(" ".join(pinyin(t) for t in tokens))


def _digits(tokens: list[str], grammar: Grammar) -> str | None:
    """The digits the tokens say when they are a number and nothing else."""
    words, numbers = grammar.digit_words, grammar.numbers
    if not all(is_number_word(t, words, numbers) for t in tokens):
        return None
    return digits_in(tokens, words, numbers)


def _correction(kind: Kind, slots: dict[str, Any]) -> Correction | None:
    if kind is Kind.POSITION:
        return Correction(kind, slots["{digit}"], slots.get("{nth}", LAST))
    digits: str = slots["{digits}"]
    if kind is Kind.WHOLE and len(digits) < MIN_WHOLE_DIGITS:
        return None
    count = slots.get("{count}")
    if count is not None and count != len(digits):
        return None  # "the last four digits are 8 0 0": which four?
    return Correction(kind, digits)
