"""Splitting a long text message into SMS parts.

One SMS holds 160 characters of the GSM 7-bit alphabet (the extension characters such as
``€`` or ``[`` take two), or 70 UTF-16 code units when any character is outside it (UCS-2:
Chinese, curly quotes, emoji). A concatenated message loses room to its header: 153 and 67
per part. Parts here are numbered ``(1/3) …`` so they read in order on any phone, and are cut
between the message's units (a walkthrough's steps) where a unit fits in a part of its own,
else between words; Chinese, written without spaces, is cut after a punctuation mark, then
between characters. A word is cut only when it is longer than a whole part.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED: Final = frozenset("^{}\\[~]|€\f")
UNIT_JOIN: Final = "\n"
# where text without spaces may be cut: after these (Chinese and Latin punctuation)
_CLAUSE_END: Final = re.compile(r"(?<=[，。；：、！？,.;:!?）)])")  # noqa: RUF001 - Chinese punctuation


class Alphabet(enum.StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class Limits:
    single: int  # one message alone
    part: int  # each part of a concatenated message


LIMITS: Final = {Alphabet.GSM7: Limits(160, 153), Alphabet.UCS2: Limits(70, 67)}


def alphabet(text: str) -> Alphabet:
    """GSM 7-bit when every character is in it, else UCS-2."""
    ok = GSM7_BASIC | GSM7_EXTENDED
    return Alphabet.GSM7 if all(c in ok for c in text) else Alphabet.UCS2


def sms_length(text: str, alpha: Alphabet) -> int:
    """Septets (GSM 7-bit) or UTF-16 code units (UCS-2) the text takes."""
    if alpha is Alphabet.GSM7:
        return sum(2 if c in GSM7_EXTENDED else 1 for c in text)
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


@dataclass(frozen=True)
class _Piece:
    sep: str  # what joins it to the piece before, within one part
    text: str
    unit_start: bool  # the first piece of a unit


def split_sms(units: Sequence[str]) -> list[str]:
    """The SMS parts of a message made of ``units`` (joined by new lines), numbered
    ``(i/n)`` when there is more than one."""
    units = [" ".join(u.split()) for u in units if u.strip()]
    whole = UNIT_JOIN.join(units)
    alpha = alphabet(whole)
    limits = LIMITS[alpha]
    if sms_length(whole, alpha) <= limits.single:
        return [whole] if whole else []
    digits = 1
    while True:  # the label's width depends on the count of parts: widen until it holds
        label = sms_length(f"({'9' * digits}/{'9' * digits}) ", alpha)
        parts = _pack(units, limits.part - label, alpha)
        if len(str(len(parts))) <= digits:
            return [f"({i}/{len(parts)}) {p}" for i, p in enumerate(parts, 1)]
        digits += 1


def _pack(units: Sequence[str], room: int, alpha: Alphabet) -> list[str]:
    parts: list[str] = []
    current = ""

    def fits(text: str) -> bool:
        return sms_length(text, alpha) <= room

    for unit in units:
        if current and fits(current + UNIT_JOIN + unit):
            current += UNIT_JOIN + unit
            continue
        if fits(unit):  # a unit that fits a part of its own is never cut
            if current:
                parts.append(current)
            current = unit
            continue
        for piece in _pieces(unit, room, alpha):
            sep = UNIT_JOIN if piece.unit_start else piece.sep
            if current and fits(current + sep + piece.text):
                current += sep + piece.text
            else:
                if current:
                    parts.append(current)
                current = piece.text
    if current:
        parts.append(current)
    return parts


def _pieces(unit: str, room: int, alpha: Alphabet) -> list[_Piece]:
    """A unit too long for one part, as the pieces it may be cut between."""
    out: list[_Piece] = []
    for w, word in enumerate(unit.split(" ")):
        chunks = [word] if sms_length(word, alpha) <= room else _CLAUSE_END.split(word)
        for c, chunk in enumerate(x for x in chunks if x):
            sep = " " if c == 0 else ""
            if sms_length(chunk, alpha) <= room:
                out.append(_Piece(sep, chunk, w == 0 and c == 0))
                continue
            for k, char in enumerate(chunk):  # longer than a part: cut between characters
                out.append(_Piece(sep if k == 0 else "", char, w == 0 and c == 0 and k == 0))
    return out
