"""The synthetic caller: espeak-ng speaking in a voice other than the IVR's, slowly."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from ivr.errors import EngineError
from ivr.speech.audio import Audio, read_audio

CALLER_VOICES: Final = {"en-US": "en-us+f3", "zh-CN": "cmn-latn-pinyin+f3", "ko-KR": "ko"}
CALLER_RATE_WPM: Final = 130


def caller_speech(
    text: str,
    *,
    locale: str = "en-US",
    rate_wpm: int = CALLER_RATE_WPM,
    voice: str | None = None,
    pitch: int | None = None,
) -> Audio:
    """Synthesise what a caller says, with the espeak-ng command (not the IVR's engine)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EngineError("espeak-ng is not installed (apt-get install espeak-ng)")
    voice = voice or CALLER_VOICES.get(locale, "en-us+f3")
    with tempfile.TemporaryDirectory(prefix="ivr-caller-") as tmp:
        out = Path(tmp) / "caller.wav"
        proc = subprocess.run(
            [
                exe,
                "-v",
                voice,
                "-s",
                str(rate_wpm),
                *(["-p", str(pitch)] if pitch is not None else []),
                "-w",
                str(out),
                text,
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            raise EngineError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode()[:200]}")
        return read_audio(out)


def write_caller_wav(
    path: Path, text: str, *, locale: str = "en-US", condition: str = "clean"
) -> Path:
    from ivr.speech.audio import write_wav

    audio = condition_speech(text, locale=locale, condition=condition)
    write_wav(path, audio.samples, audio.rate)
    return path


def condition_speech(text: str, *, locale: str, condition: str) -> Audio:
    """A caller's words as a caller in ``condition`` (ivr.qa.conditions) would be heard."""
    from ivr.qa.conditions import RENDERINGS, Condition, degrade

    cond = Condition(condition)
    r = RENDERINGS[cond]
    base = CALLER_VOICES.get(locale, "en-us+f3").split("+", 1)[0]
    voice = f"{base}+{r.voice_variant}" if r.voice_variant else None
    audio = caller_speech(
        text, locale=locale, rate_wpm=r.rate_wpm or CALLER_RATE_WPM, voice=voice, pitch=r.pitch
    )
    return degrade(audio, cond, key=text)
