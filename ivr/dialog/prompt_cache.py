"""The prompt cache: every sentence a caller can hear, rendered before any call.

``ivr prompts build`` renders each prompt and variant, at each speed a call starts
a prompt with (patient mode's too), for every value its placeholders can hold
(``ivr/data/prompt_values.toml``), every knowledge answer and walkthrough step, and
the ten digits in each position of a read-back group: a call then plays from the
cache and a read-back costs no synthesis. Text that exists only at run time (a
ticket's resolution) is rendered by :func:`prerender_text` when it is written.
"""

from __future__ import annotations

import itertools
import logging
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ivr.config import Settings
from ivr.dialog.prompts import PromptBook, SpokenDigits, SpokenText, render_text
from ivr.errors import ConfigError
from ivr.services.knowledge import KnowledgeBase
from ivr.speech.tts import Position, Segment, Speech, Synthesizer
from ivr.speech.voices import voice_for

log = logging.getLogger(__name__)

VALUES_PATH: Final = Path(__file__).resolve().parent.parent / "data" / "prompt_values.toml"
SAMPLE_RATES: Final = (8000, 16000)
SLOWER_LEVELS: Final = (0, 1)  # a call starts at 0; the second reprompt and "slower" add one
DIGITS: Final = "0123456789"


@dataclass(frozen=True)
class PlaceholderValues:
    kinds: dict[str, str]
    knowledge: dict[str, str]

    @staticmethod
    def load(path: Path = VALUES_PATH) -> PlaceholderValues:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        return PlaceholderValues(
            {str(k): str(v) for k, v in raw.get("placeholders", {}).items()},
            {str(k): str(v) for k, v in raw.get("knowledge", {}).items()},
        )

    def label_prefixes(self) -> set[str]:
        return {v.split(":", 1)[1] for v in self.kinds.values() if v.startswith("labels:")}

    def choices(self, name: str, book: PromptBook, brand: str) -> list[Any]:
        """The values a placeholder can hold, as the flows pass them."""
        kind = self.kinds.get(name)
        if kind is None:
            raise ConfigError(f"{VALUES_PATH}: placeholder {{{name}}} is not described")
        if kind == "brand":
            return [brand]
        if kind == "digits":
            return [SpokenDigits("0")]  # the literal text around it; digits are their own segments
        if kind == "text":
            return [SpokenText("")]
        if kind.startswith("labels:"):
            label = kind.split(":", 1)[1]
            return [
                book.text(pid)
                for pid in sorted(book.prompts)
                if pid == label or pid.startswith(label + ".")
            ]
        if kind.startswith("numbers:"):
            low, high = (int(x) for x in kind.split(":", 1)[1].split("-"))
            return [str(n) for n in range(low, high + 1)]
        raise ConfigError(f"{VALUES_PATH}: {name} = {kind!r}: unknown kind")


def slower_levels(settings: Settings) -> tuple[int, ...]:
    """The speeds a prompt starts at: normal, one step slower, and patient mode's."""
    return tuple(sorted({*SLOWER_LEVELS, settings.patient.slower}))


def prompt_speeches(settings: Settings, locale: str, *, slower: int) -> Iterator[Speech]:
    """Every prompt and variant of a locale, for every value of its placeholders."""
    book = PromptBook(settings.prompts_dir, locale)
    values = PlaceholderValues.load()
    labels = values.label_prefixes()
    brand = settings.brand_for(locale)
    knowledge = KnowledgeBase(settings.prompts_dir, locale)
    for pid in sorted(book.prompts):
        if pid.split(".", 1)[0] in labels or pid.startswith("sms_"):
            continue  # read inside other prompts, or texted rather than spoken
        if pid in values.knowledge:
            for article in knowledge.articles.values():
                for i, step in enumerate(article.steps):
                    yield book.speech(
                        pid,
                        params={
                            "number": i + 1,
                            "total": len(article.steps),
                            "text": SpokenText(step),
                            "brand": brand,
                        },
                        voice=settings.voice,
                        slower=slower,
                    )
            continue
        names = sorted(book.placeholders(pid))
        options = [values.choices(name, book, brand) for name in names]
        for variant in book.prompts[pid]:
            for combo in itertools.product(*options):
                yield book.speech(
                    pid,
                    variant=variant,
                    params=dict(zip(names, combo, strict=True)),
                    voice=settings.voice,
                    slower=slower,
                )
    for article in knowledge.articles.values():
        yield render_text(
            "{text}", {"text": SpokenText(article.spoken())}, voice=settings.voice, slower=slower
        )


def digit_segments(settings: Settings, *, slower: int) -> list[Segment]:
    """Each digit in each position of a group, at the read-back rate."""
    speech = render_text("{d}", {"d": SpokenDigits("0")}, voice=settings.voice, slower=slower)
    rate = next(p.rate_wpm for p in speech.parts if isinstance(p, Segment))
    return [Segment(d, rate, pos) for d in DIGITS for pos in Position]


@dataclass
class BuildReport:
    segments: int = 0
    synthesized: int = 0
    seconds: float = 0.0


def static_segments(settings: Settings, locale: str) -> list[Segment]:
    """Every segment ``ivr prompts build`` renders for a locale, each once."""
    seen: set[tuple[str, int, str]] = set()
    todo: list[Segment] = []
    for slower in slower_levels(settings):
        parts = [
            p
            for speech in prompt_speeches(settings, locale, slower=slower)
            for p in speech.parts
            if isinstance(p, Segment)
        ]
        for part in [*parts, *digit_segments(settings, slower=slower)]:
            key = (part.text, part.rate_wpm, part.position)
            if key not in seen:
                seen.add(key)
                todo.append(part)
    return todo


def build_cache(
    settings: Settings,
    synth: Synthesizer,
    locales: list[str],
    *,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
    progress: Callable[[str], None] | None = None,
) -> BuildReport:
    report = BuildReport()
    started = time.perf_counter()
    for locale in locales:
        voice = voice_for(settings.voice, locale)
        todo = static_segments(settings, locale)
        for part in todo:
            for rate in sample_rates:
                if not synth.is_cached(part, voice=voice, sample_rate=rate):
                    report.synthesized += 1
                synth.segment(
                    part.text,
                    voice=voice,
                    rate_wpm=part.rate_wpm,
                    sample_rate=rate,
                    position=part.position,
                )
                report.segments += 1
        if progress is not None:
            progress(f"{locale}: {len(todo)} segments ({voice})")
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class Coverage:
    locale: str
    sample_rate: int
    missing: int
    total: int

    def warning(self) -> str | None:
        if not self.missing:
            return None
        return (
            f"the prompt cache lacks {self.missing} of {self.total} segments for "
            f"{self.locale} at {self.sample_rate} Hz: callers wait while the voice makes "
            "them; run `ivr prompts build`"
        )


def coverage(
    settings: Settings,
    synth: Synthesizer,
    locales: list[str],
    *,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
) -> list[Coverage]:
    """How much of what ``ivr prompts build`` renders the cache holds, per locale and rate."""
    found = []
    for locale in locales:
        voice = voice_for(settings.voice, locale)
        todo = static_segments(settings, locale)
        for rate in sample_rates:
            missing = sum(not synth.is_cached(p, voice=voice, sample_rate=rate) for p in todo)
            found.append(Coverage(locale, rate, missing, len(todo)))
    return found


def prerender_text(
    settings: Settings,
    synth: Synthesizer,
    locale: str,
    text: str,
    *,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
) -> int:
    """Render run-time text (a ticket's resolution) into the cache when it is written."""
    count = 0
    voice = voice_for(settings.voice, locale)
    for slower in slower_levels(settings):
        speech = render_text(
            "{text}", {"text": SpokenText(text)}, voice=settings.voice, slower=slower
        )
        for part in speech.parts:
            if isinstance(part, Segment):
                for rate in sample_rates:
                    synth.segment(part.text, voice=voice, rate_wpm=part.rate_wpm, sample_rate=rate)
                    count += 1
    log.info("%d segments of run-time text rendered for %s", count, locale)
    return count
