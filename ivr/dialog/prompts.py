"""Prompts: what the IVR says, by id, from ``prompts/<locale>/*.yaml``.

A prompt is either a string or a mapping with ``text`` and escalation variants
(``noinput.1``, ``noinput.2``, ``nomatch.1``, ``nomatch.2``). Text may hold
``{placeholders}``; a :class:`SpokenDigits` value is read slowly in groups with
pauses between them, digit by digit from cached segments (each digit in its
position in the group), and shown masked in transcripts when it is sensitive. A
:class:`SpokenText` value (text that exists only at run time, such as a ticket's
resolution) is spoken as sentences of its own, so it can be synthesised once,
when it is written, and found in the cache when a caller asks.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from ivr.config import Voice
from ivr.errors import ConfigError
from ivr.speech.tts import Pause, Position, Segment, Speech

SENTENCE_END: Final = re.compile(r"(?<=[.!?。！？])\s*")  # noqa: RUF001 - Mandarin sentence ends
WORDS: Final = re.compile(r"\w")
VARIANTS: Final = ("noinput.1", "noinput.2", "nomatch.1", "nomatch.2")


def group_digits(digits: str, kind: str = "auto") -> list[str]:
    """Groups for reading back: phone 138 0013 8000, code 482 913, ticket numbers in pairs.

    In pairs, an odd count starts with a group of three (138 00 13 80 00), never ends alone.
    """
    if kind == "pairs" and digits:
        head = 3 if len(digits) % 2 and len(digits) > 1 else 2
        return [digits[:head]] + [digits[i : i + 2] for i in range(head, len(digits), 2)]
    n = len(digits)
    if kind == "phone" or (kind == "auto" and n >= 10):
        if n == 11:
            return [digits[:3], digits[3:7], digits[7:]]
        if n == 10:
            return [digits[:3], digits[3:6], digits[6:]]
    if n <= 4:
        return [digits]
    if n % 3 == 0:
        return [digits[i : i + 3] for i in range(0, n, 3)]
    head = n % 4 or 4
    return [digits[:head]] + [digits[i : i + 4] for i in range(head, n, 4)]


def mask_digits(digits: str, keep: int = 4) -> str:
    """Every digit but the last ``keep`` hidden (``keep=0`` hides all)."""
    if keep <= 0:
        return "*" * len(digits)
    return "*" * max(0, len(digits) - keep) + digits[-keep:]


@dataclass(frozen=True)
class SpokenDigits:
    digits: str
    kind: str = "auto"
    keep: int | None = None  # digits shown in transcripts; None shows all

    def groups(self) -> list[str]:
        return group_digits(self.digits, self.kind)

    def transcript(self) -> str:
        shown = self.digits if self.keep is None else mask_digits(self.digits, self.keep)
        out, i = [], 0
        for g in self.groups():
            out.append(shown[i : i + len(g)])
            i += len(g)
        return " ".join(out)


@dataclass(frozen=True)
class SpokenText:
    """Run-time text spoken as sentences of its own (not merged into the prompt's)."""

    text: str

    def __str__(self) -> str:
        return self.text


def digit_positions(group: str) -> list[Position]:
    """The position of each digit in its group: a lone digit ends its group."""
    if len(group) == 1:
        return [Position.END]
    return [Position.START] + [Position.MIDDLE] * (len(group) - 2) + [Position.END]


class PromptBook:
    def __init__(self, root: Path, locale: str) -> None:
        self.locale = locale
        self.dir = root / locale
        if not self.dir.is_dir():
            raise ConfigError(f"no prompts for locale {locale!r}: {self.dir} is not a directory")
        self.prompts: dict[str, dict[str, str]] = {}
        for path in sorted(self.dir.glob("*.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping of prompt ids")
            for pid, value in data.items():
                if pid in self.prompts:
                    raise ConfigError(f"{path}: prompt {pid!r} is defined twice")
                if isinstance(value, str):
                    self.prompts[pid] = {"text": value}
                elif isinstance(value, dict) and isinstance(value.get("text"), str):
                    unknown = set(value) - {"text", *VARIANTS}
                    if unknown:
                        raise ConfigError(f"{path}: {pid}: unknown variants {sorted(unknown)}")
                    self.prompts[pid] = {k: str(v) for k, v in value.items()}
                else:
                    raise ConfigError(f"{path}: {pid}: expected text or a mapping with 'text'")

    def has(self, pid: str) -> bool:
        return pid in self.prompts

    def text(self, pid: str, variant: str = "text") -> str:
        try:
            entry = self.prompts[pid]
        except KeyError as exc:
            raise ConfigError(f"prompt {pid!r} not found in {self.dir}") from exc
        return entry.get(variant, entry["text"])

    def placeholders(self, pid: str) -> set[str]:
        names: set[str] = set()
        for text in self.prompts[pid].values():
            names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return names

    def speech(
        self,
        pid: str,
        *,
        variant: str = "text",
        params: dict[str, Any] | None = None,
        voice: Voice,
        slower: int = 0,
    ) -> Speech:
        """Render a prompt to segments and pauses at the caller's current speed."""
        return render_text(
            self.text(pid, variant), params or {}, voice=voice, slower=slower, pid=pid
        )


def render_text(
    template: str, params: dict[str, Any], *, voice: Voice, slower: int = 0, pid: str = "?"
) -> Speech:
    rate = max(voice.min_rate_wpm, voice.rate_wpm - slower * voice.slower_step_wpm)
    digits_rate = max(
        voice.min_rate_wpm - 20, voice.digits_rate_wpm - slower * voice.slower_step_wpm
    )
    sentence_pause = voice.sentence_pause_ms + slower * voice.slower_extra_pause_ms
    group_pause = voice.group_pause_ms + slower * voice.slower_extra_pause_ms
    digit_pause = voice.digit_pause_ms + slower * voice.slower_extra_pause_ms // 4
    parts: list[Segment | Pause] = []
    shown: list[str] = []
    pieces = string.Formatter().parse(template)
    buffer = ""

    def flush_text(text: str) -> None:
        for sentence in SENTENCE_END.split(text):
            if WORDS.search(sentence):  # "." left after a read-back says nothing
                if parts and isinstance(parts[-1], Segment):
                    parts.append(Pause(sentence_pause))
                parts.append(Segment(sentence.strip(), rate))

    for literal, field, _spec, _conv in pieces:
        buffer += literal
        if field is None:
            continue
        if field not in params:
            raise ConfigError(f"prompt {pid!r} needs {{{field}}} but it was not given")
        value = params[field]
        if isinstance(value, SpokenDigits):
            flush_text(buffer)
            shown.append(buffer)
            buffer = ""
            parts.append(Pause(group_pause))
            for group in value.groups():
                for i, (digit, position) in enumerate(
                    zip(group, digit_positions(group), strict=True)
                ):
                    if i:
                        parts.append(Pause(digit_pause))
                    parts.append(Segment(digit, digits_rate, position))
                parts.append(Pause(group_pause))
            shown.append(value.transcript())
        elif isinstance(value, SpokenText):
            flush_text(buffer)
            shown.append(buffer)
            buffer = ""
            flush_text(value.text)
            shown.append(value.text)
        else:
            buffer += str(value)
    flush_text(buffer)
    shown.append(buffer)
    transcript = " ".join(" ".join(shown).split()).replace(" .", ".").replace(" ?", "?")
    return Speech(parts, transcript)
