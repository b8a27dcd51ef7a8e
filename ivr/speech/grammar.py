"""Grammars: what the IVR accepts at an ask, from one YAML source to every engine.

A grammar file (``grammars/<locale>/<name>.yaml``) maps semantic values to
phrases and keys, and may declare a digit string with length rules::

    values:
      "yes": ["yes", "yeah", "correct", "that's right"]
      "no": ["no", "nope", "wrong"]
    keys: {"1": "yes", "2": "no"}
    digits: {min: 7, max: 15}        # optional; ``usual``: the shapes it usually has
    heard_as: {"no": ["now"]}        # optional: what a transcriber writes for a value
    undoable: true                   # optional: a wrong answer is undone in a word ("go back")

``heard_as`` holds whole answers a transcriber writes for a value when it mishears it (a
"no" written "Now."): never offered to a caller, never shown to a transcriber, never in a
grammar decoder's grammar; they count only as the whole of what was heard.

``undoable`` marks an ask whose wrong answer the caller undoes in a word (a walkthrough
step: "go back"). Only there does a grammar decoder's unsure answer stand against a word or
two of a transcriber's that mean nothing at the ask (``ivr.speech.asr.routed``): at the
main menu, where a wrong choice sends the caller into another flow, a piece of "ticket
status" heard as "password" must be asked again instead.

It compiles to a JSGF grammar (PocketSphinx) and a phrase list (Vosk), and
interprets what either engine heard back into a value. ``_digits.yaml`` holds
the locale's digit words and ``_commands.yaml`` the global commands that every
ask also accepts (their values come back prefixed with ``@``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from ivr.errors import ConfigError
from ivr.speech.understand import NumberWords, understand

COMMAND_PREFIX: Final = "@"
DIGITS_GRAMMAR: Final = "digits"
MAX_DIGITS: Final = 20
_PUNCT = re.compile(r"[^\w' ]+", re.UNICODE)
_HANZI = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")


def normalize(text: str) -> str:
    """Lower case, no punctuation but apostrophes, single spaces.

    Chinese characters become one token each: recognisers split Mandarin into words
    differently, and character by character every split compares equal.
    """
    text = unicodedata.normalize("NFKC", text)  # full-width digits and letters become ASCII
    text = _HANZI.sub(r" \1 ", text.replace("\u2019", "'").lower())
    return " ".join(_PUNCT.sub(" ", text).split())


@dataclass(frozen=True)
class DigitRule:
    min: int
    max: int
    # shapes such numbers usually have (regular expressions over the digits: a phone number
    # of the mainland is 1, then 3-9, then 9 digits): a recogniser's next guess that has one
    # is taken over a best guess that has none (a digit too many or too few)
    usual: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.max <= MAX_DIGITS:
            raise ConfigError(
                f"expected 1 <= min <= max <= {MAX_DIGITS} digits, got {self.min}..{self.max}"
            )
        for pattern in self.usual:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"usual: {pattern!r} is no regular expression: {exc}") from exc

    def accepts(self, digits: str) -> bool:
        return self.min <= len(digits) <= self.max

    def is_usual(self, digits: str) -> bool:
        """Whether ``digits`` has a usual shape (always, when the rule names none)."""
        return not self.usual or any(re.fullmatch(p, digits) for p in self.usual)


@dataclass(frozen=True)
class Interpretation:
    value: str
    digits: str | None = None
    detail: Any = None  # what an extension understood beyond the value (a correction)

    @property
    def is_command(self) -> bool:
        return self.value.startswith(COMMAND_PREFIX)


class Extension(Protocol):
    """Answers beyond a grammar's phrases, with slots (a read-back's corrections:
    ``ivr.dialog.corrections``). Hashable: grammars are cached."""

    example: str  # what a transcriber is shown for these answers

    def interpret(self, grammar: Grammar, text: str) -> Interpretation | None: ...

    def is_complete(self, grammar: Grammar, partial: str) -> bool | None: ...

    def unusual(self, meant: Interpretation) -> bool:
        """Whether one of these answers makes a number of a shape such numbers seldom have."""
        ...

    def words(self) -> set[str]: ...

    def vosk_phrases(self) -> list[str]: ...

    def jsgf_rules(self, digit_words: dict[str, str]) -> tuple[list[str], str]: ...


@dataclass(frozen=True)
class Grammar:
    name: str
    locale: str
    phrases: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)
    digits: DigitRule | None = None
    digit_words: dict[str, str] = field(default_factory=dict)
    garbage: tuple[str, ...] = ()  # common non-answers, for engines without a garbage model
    numbers: NumberWords = field(default_factory=NumberWords)  # for free-text recognisers
    inventions: tuple[str, ...] = ()  # what a transcriber writes where nobody spoke
    extension: Extension | None = None  # more answers (corrections at a read-back)
    heard_as: dict[str, str] = field(default_factory=dict)  # a mishearing, whole: its value
    undoable: bool = False  # a wrong answer is undone in a word (module docstring)

    @property
    def says_digits(self) -> bool:
        """Answers may hold several digits ("five five" is two digits, not a repeat)."""
        return self.digits is not None or self.extension is not None

    # --- what engines need ------------------------------------------------------------
    def words(self) -> set[str]:
        found = {w for phrase in self.phrases for w in phrase.split()}
        if self.digits or self.extension:
            found |= set(self.digit_words)
        if self.extension:
            found |= self.extension.words()
        return found

    def vosk_phrases(self) -> list[str]:
        """Phrase list for Vosk; digit words appear singly and are strung together by Vosk."""
        out = sorted(self.phrases)
        if self.extension:
            out += sorted(set(self.extension.vosk_phrases()) - set(out))
        if self.digits or self.extension:
            out += sorted(set(self.digit_words) - set(out))
        return out

    def jsgf(self) -> str:
        alternatives = [_jsgf_phrase(p) for p in sorted(self.phrases)]
        rules = []
        if self.digits:
            words = " | ".join(_jsgf_phrase(w) for w in sorted(self.digit_words))
            rules.append(f"<digit> = {words};")
            required = " ".join(["<digit>"] * self.digits.min)
            optional = ""
            for _ in range(self.digits.max - self.digits.min):
                optional = f"[<digit> {optional}]".replace(" ]", "]")
            rules.append(f"<number> = {required} {optional};".replace(" ;", ";"))
            alternatives.append("<number>")
        if self.extension is not None:
            more, alternative = self.extension.jsgf_rules(self.digit_words)
            rules += more
            alternatives.append(alternative)
        body = " | ".join(alternatives) if alternatives else "<NULL>"
        return "\n".join(
            [
                "#JSGF V1.0;",
                f"grammar {_jsgf_name(self.name)};",
                *rules,
                f"public <answer> = {body};",
                "",
            ]
        )

    # --- what came back ---------------------------------------------------------------
    def digits_of(self, text: str) -> str | None:
        words = normalize(text).split()
        if not words or any(w not in self.digit_words for w in words):
            return None
        return "".join(self.digit_words[w] for w in words)

    def interpret(self, text: str) -> Interpretation | None:
        """The value a recognised text stands for, or None when the grammar does not accept it."""
        norm = normalize(text)
        if not norm:
            return None
        if norm in self.phrases:
            return Interpretation(self.phrases[norm])
        if norm in self.heard_as:
            return Interpretation(self.heard_as[norm])
        if self.extension is not None:
            extended = self.extension.interpret(self, norm)
            if extended is not None:
                return extended
        if self.digits:
            digits = self.digits_of(norm)
            if digits is not None and self.digits.accepts(digits):
                return Interpretation(value=digits, digits=digits)
        return understand(self, text)  # as written: its word breaks count

    def unusual(self, meant: Interpretation | None) -> bool:
        """Whether ``meant`` gives a number of a shape such numbers seldom have."""
        if meant is None:
            return False
        if meant.detail is not None:
            return self.extension is not None and self.extension.unusual(meant)
        return (
            meant.digits is not None
            and self.digits is not None
            and not self.digits.is_usual(meant.digits)
        )

    def is_complete(self, partial: str) -> bool:
        """True when a partial result already is a whole answer (for quick end of turn)."""
        if self.extension is not None:
            opinion = self.extension.is_complete(self, partial)
            if opinion is not None:
                return opinion
        interp = self.interpret(partial)
        if interp is None:
            return False
        if interp.digits is not None and self.digits is not None:
            return len(interp.digits) >= self.digits.max
        return True

    def key(self, key: str) -> str | None:
        return self.keys.get(key)


def _jsgf_phrase(phrase: str) -> str:
    return " ".join(phrase.split())


def _jsgf_name(name: str) -> str:
    return re.sub(r"\W", "_", name) or "g"


@dataclass(frozen=True)
class _Source:
    values: dict[str, list[str]]
    keys: dict[str, str]
    digits: DigitRule | None
    heard_as: dict[str, str] = field(default_factory=dict)
    undoable: bool = False


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"grammar file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def _parse_source(path: Path) -> _Source:
    data = _read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    unknown = set(data) - {"values", "keys", "digits", "heard_as", "undoable", "description"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {sorted(unknown)} "
            "(expected values, keys, digits, heard_as, undoable)"
        )
    undoable = data.get("undoable", False)
    if not isinstance(undoable, bool):
        raise ConfigError(f"{path}: undoable: expected true or false, got {undoable!r}")
    for section in ("values", "keys", "digits", "heard_as"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise ConfigError(
                f"{path}: {section}: expected a mapping, got {type(data[section]).__name__}"
            )
    values: dict[str, list[str]] = {}
    for value, phrases in (data.get("values") or {}).items():
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise ConfigError(f"{path}: value {value!r}: expected a list of phrases")
        values[str(value)] = [normalize(p) for p in phrases if normalize(p)]
    heard_as: dict[str, str] = {}
    for value, texts in (data.get("heard_as") or {}).items():
        if str(value) not in values:
            raise ConfigError(f"{path}: heard_as: {value!r} is none of the values")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ConfigError(f"{path}: heard_as: {value!r}: expected a list of texts")
        for text in filter(None, map(normalize, texts)):
            if heard_as.get(text, str(value)) != str(value) or text in _phrases(values):
                raise ConfigError(
                    f"{path}: heard_as: {text!r} is a phrase already, or means another value"
                )
            heard_as[text] = str(value)
    keys = {str(k): str(v) for k, v in (data.get("keys") or {}).items()}
    for key in keys:
        if key not in "0123456789*#" or len(key) != 1:
            raise ConfigError(f"{path}: expected keys 0-9, * or #, got {key!r}")
    digits = None
    if "digits" in data:
        spec = data["digits"] or {}
        try:
            usual = spec.get("usual") or []
            if not isinstance(usual, list) or not all(isinstance(u, str) for u in usual):
                raise ConfigError("usual: expected a list of regular expressions")
            if "length" in spec:
                length = int(spec["length"])
                digits = DigitRule(length, length, tuple(usual))
            else:
                low, high = int(spec.get("min", 1)), int(spec.get("max", MAX_DIGITS))
                digits = DigitRule(low, high, tuple(usual))
        except (TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise ConfigError(f"{path}: digits: {exc}") from exc
    return _Source(values, keys, digits, heard_as, undoable)


def _phrases(values: dict[str, list[str]]) -> set[str]:
    return {p for plist in values.values() for p in plist}


class GrammarBook:
    """Loads and caches the grammars of one locale."""

    def __init__(self, root: Path, locale: str) -> None:
        self.root = root
        self.locale = locale
        self.dir = root / locale
        if not self.dir.is_dir():
            raise ConfigError(f"no grammars for locale {locale!r}: {self.dir} is not a directory")
        words = _read_yaml(self.dir / "_digits.yaml") or {}
        if not isinstance(words, dict):
            raise ConfigError(f"{self.dir / '_digits.yaml'}: expected a mapping of words to digits")
        self.digit_words: dict[str, str] = {normalize(str(k)): str(v) for k, v in words.items()}
        if sorted(set(self.digit_words.values())) != list("0123456789"):
            raise ConfigError(f"{self.dir / '_digits.yaml'}: expected words for every digit 0-9")
        self.commands = _parse_source(self.dir / "_commands.yaml")
        self.numbers = NumberWords.load(self.dir / "_numbers.yaml")
        inventions_file = self.dir / "_inventions.yaml"
        found = (_read_yaml(inventions_file) or []) if inventions_file.exists() else []
        if not isinstance(found, list):
            raise ConfigError(f"{inventions_file}: expected a list of texts")
        self.inventions = tuple(normalize(str(t)) for t in found)
        garbage_file = self.dir / "_garbage.yaml"
        words = (_read_yaml(garbage_file) or []) if garbage_file.exists() else []
        if not isinstance(words, list):
            raise ConfigError(f"{garbage_file}: expected a list of words")
        self.garbage = tuple(normalize(str(w)) for w in words)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.yaml") if not p.stem.startswith("_"))

    @functools.cache  # noqa: B019 - one book per locale per process; grammars are immutable
    def get(
        self,
        name: str,
        *,
        commands: bool = True,
        digits: DigitRule | None = None,
        extension: Extension | None = None,
    ) -> Grammar:
        """The grammar ``name``, plus the global commands unless ``commands`` is False.

        ``digits`` overrides the length rule (the built-in ``digits`` grammar takes it);
        ``extension`` adds answers with slots (a read-back's corrections).
        """
        if name == DIGITS_GRAMMAR:
            source = _Source({}, {}, digits or DigitRule(1, MAX_DIGITS))
        else:
            source = _parse_source(self.dir / f"{name}.yaml")
            if digits is not None:
                source = replace(source, digits=digits)
        phrases: dict[str, str] = {}
        keys: dict[str, str] = {}
        if commands:
            for value, plist in self.commands.values.items():
                for phrase in plist:
                    phrases[phrase] = COMMAND_PREFIX + value
            if source.digits is None:  # 0 and * are digits-entry keys inside digit asks
                keys.update({k: COMMAND_PREFIX + v for k, v in self.commands.keys.items()})
        own: dict[str, str] = {}
        for value, plist in source.values.items():
            for phrase in plist:
                if own.get(phrase, value) != value:
                    raise ConfigError(
                        f"{self.dir / name}.yaml: phrase {phrase!r} means both "
                        f"{own[phrase]!r} and {value!r}"
                    )
                own[phrase] = value
        phrases.update(own)  # an ask's own meaning of a phrase wins over the global command
        keys.update(source.keys)
        return Grammar(
            name=name,
            locale=self.locale,
            phrases=phrases,
            keys=keys,
            digits=source.digits,
            digit_words=self.digit_words if source.digits or extension else {},
            garbage=tuple(w for w in self.garbage if w not in phrases),
            numbers=self.numbers,
            inventions=self.inventions,
            extension=extension,
            heard_as={t: v for t, v in source.heard_as.items() if t not in phrases},
            undoable=source.undoable,
        )
