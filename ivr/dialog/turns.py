"""One turn of the caller's: what an ask heard, and what of it the call record keeps.

The dialog engine (``ivr.dialog.engine``) listens and decides when a turn ends; what the
turn means is worked out here, from the recogniser's text or the keys pressed, without
the channel: speech mapped onto the ask's grammar, keys at a digit ask or a read-back
(where one key answers and more keys correct the number), a correction applied to the
number read back. ``for_the_record`` masks a code or phone number before anything of the
turn reaches the call record or the transcript.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from ivr.dialog.corrections import CORRECTION, Correction, Target, from_keys
from ivr.services.privacy import mask_phone
from ivr.speech.audio import Audio
from ivr.speech.grammar import Grammar, normalize


class AskKind(enum.StrEnum):
    MENU = "menu"
    YES_NO = "yes_no"
    DIGITS = "digits"


class Sensitive(enum.StrEnum):
    PHONE = "phone"
    CODE = "code"


class Mode(enum.StrEnum):
    SPEECH = "speech"
    DTMF = "dtmf"
    NO_INPUT = "no_input"
    HANGUP = "hangup"


@dataclass
class Heard:
    mode: Mode
    value: str | None = None
    heard: str = ""
    confidence: float | None = None
    digits: str | None = None
    correction: Correction | None = None


@dataclass
class Answer:
    ask: str
    value: str
    mode: Mode
    heard: str
    confidence: float | None
    digits: str | None = None


@dataclass(frozen=True)
class Recording:
    """Free speech kept whole (feedback), with what the free-form recogniser made of it."""

    audio: Audio
    text: str
    confidence: float | None
    ended_by: str  # silence | key | limit

    @property
    def seconds(self) -> float:
        return self.audio.seconds


def spoken(grammar: Grammar, text: str, confidence: float, reject: float) -> Heard:
    """The recogniser's text mapped onto the ask's grammar; under ``reject``, no match."""
    interp = grammar.interpret(text)
    if interp is None or confidence < reject:
        return Heard(Mode.SPEECH, None, text, confidence)
    correction = interp.detail if isinstance(interp.detail, Correction) else None
    return Heard(Mode.SPEECH, interp.value, text, confidence, interp.digits, correction)


def keyed_digits(grammar: Grammar, keys: str) -> Heard:
    """Keys at a digit ask: the number, when the ask's length rule takes it."""
    assert grammar.digits is not None
    if keys and grammar.digits.accepts(keys):
        return Heard(Mode.DTMF, keys, keys, 1.0, keys)
    return Heard(Mode.DTMF, None, keys, None, keys if keys.isdigit() else None)


def read_back_keys(grammar: Grammar, keys: str) -> Heard:
    """Keys at a read-back: one key means what it always meant (1 yes, 2 no, 0 agent,
    * main menu); more are a correction (the whole number, or * and the last digits)."""
    keys = keys.removesuffix("#") if len(keys) > 1 else keys
    if len(keys) == 1:
        value = grammar.key(keys)
        return Heard(Mode.DTMF, value, keys, 1.0 if value else None)
    found = from_keys(keys)
    said = "".join(k for k in keys if k.isdigit()) or None
    if found is None:
        return Heard(Mode.DTMF, None, keys, None, said)
    return Heard(Mode.DTMF, CORRECTION, keys, 1.0, found.digits, found)


def corrected(heard: Heard, target: Target) -> Heard:
    """A correction applied to the number read back; one that does not fit is no match."""
    if heard.value != CORRECTION:
        return heard
    fixed = heard.correction.apply(target.number, target.rule) if heard.correction else None
    if fixed is None:
        return dataclasses.replace(heard, value=None, confidence=None)
    return dataclasses.replace(heard, digits=fixed)


def is_correction(grammar: Grammar, text: str) -> bool:
    """Whether ``text`` (a partial result at a read-back) is a correction of the number."""
    found = grammar.interpret(text) if text else None
    return found is not None and found.value == CORRECTION


def for_the_record(
    heard: Heard, sensitive: Sensitive | None, grammar: Grammar | None = None
) -> tuple[str, str | None]:
    """The turn's text and value as the call record and transcript keep them: a code never
    (its length in stars, or "(code spoken)"), a phone number masked."""
    text, value = heard.heard, heard.value
    said = heard.digits
    if (
        sensitive is not None
        and not said
        and heard.mode is Mode.SPEECH
        and grammar is not None
        and grammar.extension
    ):
        # a read-back of a code or number: what was said there is as secret as the number
        said = digits_said(heard.heard, grammar)
    if sensitive is Sensitive.CODE and said:
        text = "*" * len(said) if heard.mode is Mode.DTMF else "(code spoken)"
        value = "*" * len(said) if heard.value is not None and heard.digits else heard.value
    elif sensitive is Sensitive.PHONE and said:
        text = mask_phone(said) or "" if heard.mode is Mode.DTMF else "(number spoken)"
        value = mask_phone(said) if heard.value is not None and heard.digits else heard.value
    return text, value


def digits_said(text: str, grammar: Grammar) -> str | None:
    """The digits in a text heard at a read-back (figures and digit words), if any."""
    from ivr.speech.understand import is_number_word

    words = [w for w in normalize(text).split() if w not in grammar.phrases]
    found = [w for w in words if is_number_word(w, grammar.digit_words, grammar.numbers)]
    return "".join(found) or None
