"""Helpers for tests: recognise a clip with a real engine the way a call does, an en-US
dialog on a channel, a process's children."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ivr.channels.base import Channel
from ivr.config import Settings
from ivr.dialog.engine import Dialog
from ivr.dialog.prompts import PromptBook
from ivr.services.calls import CallRecorder
from ivr.services.store import Store
from ivr.speech.asr.base import Engine, Hypothesis
from ivr.speech.audio import Audio, split_frames
from ivr.speech.grammar import Grammar, GrammarBook
from ivr.speech.tts import Synthesizer
from ivr.speech.voices import voice_for


def recognise(
    engine: Engine,
    grammar: Grammar | None,
    audio: Audio,
    rate: int = 16000,
    context: dict[str, Any] | None = None,
) -> Hypothesis:
    """Feed 20 ms frames with the lead-in and trailing silence a call has around speech."""
    audio = audio.to_rate(rate)
    padded = np.concatenate(
        [np.zeros(rate * 3 // 10, np.int16), audio.samples, np.zeros(rate * 6 // 10, np.int16)]
    )
    rec = engine.recognizer(grammar, rate, context)
    for frame in split_frames(padded, rate):
        rec.accept(frame)
    return rec.finish()


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's parent in a container may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that are still its own (from /proc; none once it ended)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass  # a process (or one of its threads) that ended meanwhile
    return found


def en_us_dialog(
    settings: Settings, store: Store, channel: Channel, engine: Engine | None
) -> Dialog:
    """An en-US dialog on ``channel`` whose speech goes to ``engine`` (None: keys only),
    recorded in ``store``."""
    return Dialog(
        channel=channel,
        settings=settings,
        prompts=PromptBook(settings.prompts_dir, "en-US"),
        grammars=GrammarBook(settings.grammars_dir, "en-US"),
        synthesizer=Synthesizer(settings.cache_dir / "prompts"),
        engine=engine,
        recorder=CallRecorder(store, channel="scripted", locale="en-US", caller_id=None),
        voice=voice_for(settings.voice, "en-US"),
    )
