"""Which voice speaks each locale: a natural (Piper) voice when one is installed, else espeak-ng.

A voice is named by one string, which is also part of the prompt cache key:
``piper:<voice>`` for a natural voice (``piper:en_US-joe-medium``), a bare espeak-ng
voice name otherwise (``en-us``, ``cmn-latn-pinyin``; ``espeak:<name>`` is accepted
too). The natural voices the IVR knows are listed in ``ivr/data/voices.toml``; each
ships in its own Python package. A locale configured as ``auto`` speaks with its
natural voice when that package and the Piper runtime import, and with espeak-ng
otherwise (said once in the log).

espeak-ng names its Mandarin voices by how they read Latin text: on espeak-ng 1.51
(Debian 12) ``cmn`` is "Chinese (Mandarin, latin as English)", and it reads Chinese
characters as pinyin with the *English* voice and English tone numbers ("ling two,
yi one"), which a Mandarin caller cannot follow; ``cmn-latn-pinyin`` ("latin as
Pinyin") speaks the same text with Mandarin phonemes and tones. A locale configured
as ``auto`` takes the first voice of its preference list that the installed
espeak-ng has and that does not read its language as English.
"""

from __future__ import annotations

import functools
import importlib
import logging
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ivr.config import Voice
from ivr.errors import ConfigError

log = logging.getLogger(__name__)

AUTO: Final = "auto"
# Voices to try, best first, for a locale configured as "auto".
PREFERRED: Final[dict[str, tuple[str, ...]]] = {
    "en-US": ("en-us",),
    "zh-CN": ("cmn-latn-pinyin", "cmn"),
}
LATIN_AS_ENGLISH: Final = "latin as english"
LIST_TIMEOUT_SEC: Final = 10.0
PIPER: Final = "piper:"
ESPEAK: Final = "espeak:"
CATALOGUE_PATH: Final = Path(__file__).resolve().parent.parent / "data" / "voices.toml"


@dataclass(frozen=True)
class NaturalVoice:
    """A Piper voice shipped in a Python package (see ``ivr/data/voices.toml``)."""

    name: str  # e.g. "en_US-joe-medium"
    package: str
    locale: str
    natural_wpm: float
    stretch_exponent: float

    @property
    def ref(self) -> str:
        return f"{PIPER}{self.name}"

    def paths(self) -> tuple[Path, Path]:
        """The ONNX model and its JSON configuration (ImportError when not installed)."""
        module = importlib.import_module(self.package)
        return Path(module.model_path()), Path(module.config_path())

    def length_scale(self, rate_wpm: float) -> float:
        """Piper's length scale that makes this voice speak at ``rate_wpm``."""
        return float((self.natural_wpm / rate_wpm) ** (1 / self.stretch_exponent))


@functools.cache
def natural_voices() -> dict[str, NaturalVoice]:
    with CATALOGUE_PATH.open("rb") as fh:
        raw = tomllib.load(fh)
    try:
        return {
            name: NaturalVoice(
                name=name,
                package=str(entry["package"]),
                locale=str(entry["locale"]),
                natural_wpm=float(entry["natural_wpm"]),
                stretch_exponent=float(entry["stretch_exponent"]),
            )
            for name, entry in raw.items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{CATALOGUE_PATH}: bad voice entry: {exc}") from exc


@functools.cache
def natural_voice_installed(name: str) -> str | None:
    """None when the voice and the Piper runtime import and its files exist; else why not."""
    voice = natural_voices().get(name)
    if voice is None:
        return f"unknown voice (expected one of {sorted(natural_voices())})"
    try:
        importlib.import_module("piper")
        model, config = voice.paths()
    except (ImportError, OSError) as exc:
        return f"not installed ({exc})"
    missing = [str(p) for p in (model, config) if not p.is_file()]
    return f"files missing: {missing}" if missing else None


def natural_voice(ref: str) -> NaturalVoice | None:
    """The natural voice a voice string names, or None for an espeak-ng voice."""
    if not ref.startswith(PIPER):
        return None
    name = ref[len(PIPER) :]
    try:
        return natural_voices()[name]
    except KeyError as exc:
        raise ConfigError(
            f"unknown natural voice {name!r}: expected one of {sorted(natural_voices())}"
        ) from exc


@functools.cache
def _fallback_once(locale: str, wanted: str, reason: str, fallback: str) -> None:
    log.warning(
        "natural voice %s for %s is not available (%s); speaking with espeak-ng %s",
        wanted,
        locale,
        reason,
        fallback,
    )


@dataclass(frozen=True)
class EspeakVoice:
    name: str  # what espeak-ng -v takes, e.g. "cmn-latn-pinyin"
    language: str  # e.g. "cmn"
    title: str  # e.g. "Chinese (Mandarin, latin as Pinyin)"

    @property
    def reads_as_english(self) -> bool:
        """A voice for another language that reads its own script through English."""
        return LATIN_AS_ENGLISH in self.title.lower() and not self.language.startswith("en")


@functools.cache
def installed_voices() -> tuple[EspeakVoice, ...]:
    """The voices of the installed espeak-ng (empty when espeak-ng is missing)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "--voices"], capture_output=True, text=True, timeout=LIST_TIMEOUT_SEC, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not list espeak-ng voices: %s", exc)
        return ()
    voices: list[EspeakVoice] = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5:
            continue
        # Pty Language Age/Gender VoiceName File Other-languages
        language, title, file = cols[1], cols[3].replace("_", " "), cols[4]
        name = file.rsplit("/", 1)[-1].lower()
        voices.append(EspeakVoice(name=name, language=language.lower(), title=title))
    return tuple(voices)


def find_voice(name: str) -> EspeakVoice | None:
    base = name.split("+", 1)[0].lower()  # "cmn+f3": the variant does not change the reading
    return next((v for v in installed_voices() if v.name == base), None)


def resolve_voice(locale: str, configured: str | None) -> str:
    """The voice for a locale: the configured one, or the best installed one.

    A natural voice that is configured (or that ``auto`` would take) but not
    installed falls back to the best espeak-ng voice, with one log line saying so.
    """
    configured = configured or AUTO
    if configured.startswith(ESPEAK):
        return configured[len(ESPEAK) :]
    wanted: NaturalVoice | None = None
    if configured.startswith(PIPER):
        wanted = natural_voice(configured)
    elif configured == AUTO:
        wanted = next((v for v in natural_voices().values() if v.locale == locale), None)
    else:
        return configured
    if wanted is not None:
        reason = natural_voice_installed(wanted.name)
        if reason is None:
            return wanted.ref
        fallback = _espeak_voice(locale)
        _fallback_once(locale, wanted.name, reason, fallback)
        return fallback
    return _espeak_voice(locale)


def _espeak_voice(locale: str) -> str:
    """The best espeak-ng voice the installed espeak-ng has for a locale."""
    candidates = PREFERRED.get(locale, (locale.lower(),))
    if not installed_voices():
        return candidates[0]
    for name in candidates:
        voice = find_voice(name)
        if voice is not None and not voice.reads_as_english:
            return voice.name
    for name in candidates:
        if find_voice(name) is not None:
            log.warning(
                "espeak-ng has no voice that reads %s in its own language; using %s", locale, name
            )
            return name
    raise ConfigError(
        f"espeak-ng has no voice for {locale}: expected one of {list(candidates)}, "
        f"got {sorted(v.name for v in installed_voices())[:20]}..."
    )


def english_reading_warning(locale: str, voice_name: str) -> str | None:
    """A warning when a locale's voice reads its language's text as English."""
    voice = find_voice(voice_name)
    if voice is None or not voice.reads_as_english or locale.lower().startswith("en"):
        return None
    return (
        f"the {locale} voice {voice_name!r} is {voice.title!r}: it reads {locale} text with "
        "English letters and numbers; configure a voice that reads it in its own language"
        + (" (e.g. 'cmn-latn-pinyin')" if locale == "zh-CN" else "")
    )


def voice_for(voice: Voice, locale: str) -> str:
    """The voice that speaks ``locale`` under these settings (``piper:…`` or espeak-ng)."""
    return resolve_voice(locale, voice.voices.get(locale, AUTO))


def describe_voice(ref: str) -> str:
    """What ``ivr doctor`` shows for a voice: engine, name and what it is."""
    natural = natural_voice(ref)
    if natural is not None:
        model, _config = natural.paths()
        return f"Piper {natural.name!r} (natural voice, {model.name} from {natural.package})"
    espeak = find_voice(ref)
    title = espeak.title if espeak else "not installed"
    return f"espeak-ng {ref!r} ({title})"
