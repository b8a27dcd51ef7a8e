"""`ivr` commands: what is installed and which engine serves each locale."""

from __future__ import annotations

import argparse
from typing import Any

from ivr import __version__
from ivr.cli.common import settings_for


def cmd_doctor(args: argparse.Namespace) -> int:
    import shutil

    from ivr.dialog.prompt_cache import coverage
    from ivr.errors import ConfigError
    from ivr.speech.engines import Engines
    from ivr.speech.tts import Synthesizer
    from ivr.speech.voices import describe_voice, english_reading_warning, voice_for

    settings = settings_for(args)
    ok = True
    print(f"ivr {__version__}; home {settings.home}")
    for exe in ("espeak-ng", "ffmpeg", "sipp", "baresip"):
        found = shutil.which(exe)
        print(f"  {exe:10s} {'found at ' + found if found else 'not installed'}")
        ok &= exe != "espeak-ng" or bool(found)
    for module in (
        "vosk",
        "pocketsphinx",
        "pyttsx3",
        "sounddevice",
        "transitions",
        "soxr",
        "webrtcvad",
        "piper",
    ):
        try:
            __import__(module)
            print(f"  {module:12s} ok")
        except (ImportError, OSError) as exc:
            print(f"  {module:12s} MISSING ({exc})")
            ok = ok and module in ("sounddevice", "piper")  # piper: espeak-ng speaks instead
    engines = Engines.from_settings(settings)
    for locale in sorted(p.name for p in settings.grammars_dir.iterdir() if p.is_dir()):
        print(f"  speech input {locale}: {engines.describe(locale)}")
    locales = sorted(p.name for p in settings.prompts_dir.iterdir() if p.is_dir())
    for locale in locales:
        name = voice_for(settings.voice, locale)
        print(f"  voice {locale}: {describe_voice(name)}")
        warning = english_reading_warning(locale, name)
        if warning:
            print(f"  WARNING: {warning}")
    try:
        parts = coverage(settings, Synthesizer(settings.cache_dir / "prompts"), locales)
    except (ConfigError, OSError) as exc:
        print(f"  WARNING: prompt cache not checked: {exc}")
        parts = []
    for part in parts:
        held = part.total - part.missing
        print(f"  prompt cache {part.locale} {part.sample_rate} Hz: {held} of {part.total}")
        if part.missing:
            print(f"  WARNING: {part.warning()}")
    return 0 if ok else 1


def register(sub: Any) -> None:
    doc = sub.add_parser("doctor", help="what is installed and which engine serves each locale")
    doc.set_defaults(func=cmd_doctor)
