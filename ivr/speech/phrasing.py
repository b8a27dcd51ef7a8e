"""The first phrase of a sentence, so that speech no cache holds starts playing sooner.

A natural voice makes a whole sentence before any of it can play. Cut the first
sentence of uncached speech after its first phrase (at a comma, before a word that
begins a phrase, or after a few words that do not leave an article hanging) and the
caller hears the lead while the rest is made. The rules per locale are data
(``ivr/data/phrasing.toml``); the lead ends with a comma, so the voice says it as a
phrase that goes on, not as a sentence that ends.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ivr.errors import ConfigError

RULES_PATH: Final = Path(__file__).resolve().parent.parent / "data" / "phrasing.toml"
PHRASE_MARKS: Final = ",;:"


@dataclass(frozen=True)
class PhraseRules:
    min_words: int
    max_words: int
    comma_reach: int
    min_rest: int
    break_before: frozenset[str]
    never_end_on: frozenset[str]
    never_begin: frozenset[str]
    pause_ms: int

    def lead(self, text: str) -> tuple[str, str] | None:
        """``text`` cut into its lead phrase and the rest, or None when it stays whole."""
        words = text.split()
        if len(words) <= self.max_words:
            return None
        cut = self._cut(words)
        if cut is None:
            return None
        lead = " ".join(words[:cut])
        if lead[-1] not in PHRASE_MARKS:
            lead += ","
        return lead, " ".join(words[cut:])

    def _cut(self, words: list[str]) -> int | None:
        low = self.min_words
        high = min(self.max_words, len(words) - self.min_rest)
        reach = min(high + self.comma_reach, len(words) - self.min_rest)
        for i, word in enumerate(words[:reach], 1):  # a comma the text already has
            if word[-1] in PHRASE_MARKS:
                return i if i >= low else None
        bare = [w.strip(".,;:!?\"'").lower() for w in words]
        for i in range(low, high + 1):  # before a word that begins a phrase
            if bare[i] in self.break_before and bare[i - 1] not in self.never_end_on:
                return i
        for i in range(high, low - 1, -1):  # after a word that can end one
            if bare[i - 1] not in self.never_end_on and bare[i] not in self.never_begin:
                return i
        return None


@functools.cache
def phrase_rules() -> dict[str, PhraseRules]:
    """The rules of every locale that has them."""
    with RULES_PATH.open("rb") as fh:
        raw = tomllib.load(fh)
    try:
        rules = {}
        for locale, entry in raw.items():
            low, high = (int(n) for n in entry["lead_words"])
            if not 1 <= low <= high:
                raise ValueError(f"lead_words must be [min, max] with 1 <= min <= max: {low, high}")
            rules[locale] = PhraseRules(
                min_words=low,
                max_words=high,
                comma_reach=int(entry["comma_reach"]),
                min_rest=int(entry["min_rest"]),
                break_before=frozenset(str(w).lower() for w in entry["break_before"]),
                never_end_on=frozenset(str(w).lower() for w in entry["never_end_on"]),
                never_begin=frozenset(str(w).lower() for w in entry["never_begin"]),
                pause_ms=int(entry["pause_ms"]),
            )
        return rules
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{RULES_PATH}: bad phrasing entry: {exc}") from exc
