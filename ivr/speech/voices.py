"""Which espeak-ng voice speaks each locale, chosen from what the installed espeak-ng offers.

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
import logging
import shutil
import subprocess
from dataclasses import dataclass
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
    """The espeak-ng voice name for a locale: the configured one, or the best installed one."""
    if configured and configured != AUTO:
        return configured
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
    """The espeak-ng voice that speaks ``locale`` under these settings."""
    return resolve_voice(locale, voice.voices.get(locale, AUTO))
