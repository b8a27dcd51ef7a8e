"""The dialog tells a whole-utterance recogniser when the caller goes quiet and speaks again.

A recogniser here is a stand-in that records what the dialog tells it (the dialog's logic
is under test; ``tests/integration/test_whisper.py`` hears real speech with Whisper).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from ivr.channels.base import HangUp
from ivr.channels.scripted import ScriptedChannel, Turn, TurnKind
from ivr.dialog.engine import CallerHungUp
from ivr.dialog.turns import AskKind
from ivr.qa.synth import caller_speech
from ivr.services.store import Store
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.audio import FRAME_MS, Audio
from ivr.speech.grammar import Grammar
from tests.helpers import en_us_dialog

NUMBER = "two zero two six, one one two zero"


class Listener(Recognizer):
    """Hears the next piece of ``said`` each time it is told the caller went quiet (as far
    as the caller got); logs each frame and hint."""

    def __init__(self, sample_rate: int, said: list[str]) -> None:
        self.sample_rate = sample_rate
        self.said = said
        self.log: list[str] = []

    def accept(self, frame: np.ndarray) -> None:
        self.log.append("frame")

    def pause(self, *, wait: bool = False, eager: bool = False) -> None:
        self.log.append(f"pause wait={wait}" + (" eager" if eager else ""))

    def resume(self) -> None:
        self.log.append("resume")

    def partial(self) -> str:
        hints = [e for e in self.log if e != "frame"]
        if not hints or not hints[-1].startswith("pause"):
            return ""
        return self.said[min(len(hints), len(self.said)) // 2]  # pause, resume, pause, ...

    def finish(self) -> Hypothesis:
        self.log.append("finish")
        return Hypothesis(NUMBER, 0.9, "listener")

    def close(self) -> None:
        self.log.append("close")


class OneListener(Engine):
    name = "listener"
    locale = "en-US"

    def __init__(self, said: list[str]) -> None:
        self.said = said
        self.made: list[Listener] = []

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        self.made.append(Listener(sample_rate, self.said))
        return self.made[-1]

    def unknown_words(self, words: set[str]) -> list[str]:
        return []


class HangsUpAfterSpeaking(ScriptedChannel):
    """The caller says their turn's words and hangs up in the quiet after them."""

    def listening(self, ask: str) -> None:
        super().listening(ask)
        self._pending.append(HangUp("caller hung up"))


def _ask(  # type: ignore[no-untyped-def]
    settings,
    tmp_path: Path,
    audio: Audio,
    said: list[str],
    channel: type[ScriptedChannel] = ScriptedChannel,
) -> tuple[Any, list[str]]:
    engine = OneListener(said)
    store = Store(tmp_path / "calls.sqlite3")
    dialog = en_us_dialog(settings, store, channel([Turn(TurnKind.AUDIO, audio=audio)]), engine)
    try:
        answer: Any = dialog.ask("ticket_number", grammar="ticket_number", kind=AskKind.DIGITS)
    except CallerHungUp:
        answer = dialog.recorder.turns[-1]
    store.close()
    (listener,) = engine.made
    return answer, listener.log


def test_a_whole_number_heard_in_the_quiet_ends_the_turn_before_the_digit_wait(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    answer, log = _ask(settings, tmp_path, caller_speech(NUMBER), [NUMBER])
    assert answer.digits == "20261120"
    (pause,) = [i for i, e in enumerate(log) if e.startswith("pause")]
    assert log[pause] == "pause wait=True"  # a simulated call waits for the decode
    quiet_frames = settings.timeouts.early_decode_ms // 20
    assert log[pause - quiet_frames - 1 : pause] == ["frame"] * (quiet_frames + 1)
    # the whole number was heard: the turn ends at the next look, not after 1.5 s of silence
    after = log[pause + 1 :]
    assert after[-1] == "finish" and 0 < after.count("frame") <= 5, after


def test_a_caller_who_goes_on_after_a_pause_is_heard_to_the_end(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, rest = caller_speech("two zero two six"), caller_speech("one one two zero")
    gap = np.zeros(first.rate * 7 // 10, np.int16)  # 0.7 s: past the early decode's 0.4 s
    audio = Audio(np.concatenate([first.samples, gap, rest.samples]), first.rate)
    _answer, log = _ask(settings, tmp_path, audio, ["two zero two six", NUMBER])
    hints = [e for e in log if e != "frame"]
    # half a number heard in the gap: the turn goes on, and the caller's next words drop it
    assert hints == ["pause wait=True", "resume", "pause wait=True", "finish"], hints


def test_a_caller_who_hangs_up_in_the_quiet_after_an_early_decode_leaves_a_hang_up_turn(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    half = caller_speech("two zero two six")
    quiet = np.zeros(half.rate * 6 // 10, np.int16)  # quiet long enough for the early decode
    audio = Audio(np.concatenate([half.samples, quiet]), half.rate)
    turn, log = _ask(settings, tmp_path, audio, ["two zero two six"], HangsUpAfterSpeaking)
    assert turn.ask == "ticket_number" and turn.mode == "hangup"
    hints = [e for e in log if e != "frame"]
    assert hints == ["pause wait=True", "close"], hints  # dropped, never taken as an answer


def test_early_decode_off_waits_out_the_silence(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    off = dataclasses.replace(settings.timeouts, early_decode_ms=0)
    answer, log = _ask(
        dataclasses.replace(settings, timeouts=off), tmp_path, caller_speech(NUMBER), [NUMBER]
    )
    assert answer.digits == "20261120"
    assert [e for e in log if e != "frame"] == ["finish"]  # heard when the turn ended


class Streamer(Listener):
    """A streaming decoder: its partial result is the whole answer once the caller has begun."""

    def partial(self) -> str:
        return self.said[0] if self.log.count("frame") > 10 else ""

    def finish(self) -> Hypothesis:
        self.log.append("finish")
        return Hypothesis(self.said[0], 0.9, "streamer")


class OneStreamer(OneListener):
    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        self.made.append(Streamer(sample_rate, self.said))
        return self.made[-1]


def _frames_before_pause(settings, tmp_path: Path, timeouts) -> int:  # type: ignore[no-untyped-def]
    engine = OneStreamer(["yes"])
    store = Store(tmp_path / "calls.sqlite3")
    dialog = en_us_dialog(
        dataclasses.replace(settings, timeouts=timeouts),
        store,
        ScriptedChannel([Turn(TurnKind.AUDIO, audio=caller_speech("yes"))]),
        engine,
    )
    dialog.ask("step_done", grammar="yes_no", kind=AskKind.YES_NO)
    store.close()
    (streamer,) = engine.made
    pauses = [i for i, e in enumerate(streamer.log) if e.startswith("pause")]
    assert pauses and streamer.log[-1] == "finish", streamer.log
    return streamer.log[: pauses[0]].count("frame")


def test_a_whole_answer_from_the_streaming_decoder_is_decoded_again_sooner(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    t = dataclasses.replace(settings.timeouts, early_decode_complete_ms=150)
    assert 0 < t.early_decode_complete_ms < t.early_decode_ms <= t.end_silence_complete_ms
    soon = _frames_before_pause(settings, tmp_path / "soon", t)
    late = _frames_before_pause(
        settings, tmp_path / "late", dataclasses.replace(t, early_decode_complete_ms=0)
    )
    # the same audio: the second opinion starts as many frames sooner as the setting says
    expected = math.ceil(t.early_decode_ms / FRAME_MS) - math.ceil(
        t.early_decode_complete_ms / FRAME_MS
    )
    assert late - soon == expected, (soon, late)
