"""baresip as the caller (speech from a WAV file) and as the agent's phone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivr.config import Settings
from ivr.dialog.prompts import PromptBook, SpokenDigits
from ivr.qa.synth import caller_speech
from ivr.services.knowledge import KnowledgeBase
from ivr.speech.audio import read_audio, write_wav
from ivr.speech.tts import Synthesizer
from ivr.speech.voices import voice_for
from tests.sip.peers import Baresip, start_ivr
from tests.sip.test_sipp import FIXTURES

RATE = 16000
TURN_S = 1.5  # endpointing and recognition of an answer on an idle machine


class Timeline:
    """When the IVR will be asking what, timed with the IVR's own voice: each answer comes
    a moment after its ask's prompt ends, so a slow turn on a busy machine (endpointing and
    recognition) moves the ask later but never after the caller's answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.book = PromptBook(settings.prompts_dir, "en-US")
        self.synth = Synthesizer(settings.cache_dir / "prompts")
        self.voice = voice_for(settings.voice, "en-US")
        self.t = 0.0
        self.answers: list[tuple[float, str]] = []

    def seconds(self, pid: str, **params: object) -> float:
        speech = self.book.speech(
            pid, params={"brand": self.settings.brand, **params}, voice=self.settings.voice
        )
        return self.synth.render(speech, voice=self.voice, sample_rate=RATE).seconds

    def say(self, pid: str, **params: object) -> None:
        self.t += self.seconds(pid, **params)

    def answer(self, text: str, after: float = 2.0) -> None:
        """``text`` said ``after`` seconds past the timeline's point (over the next prompt
        when that prompt is not on the timeline)."""
        start = self.t + after
        self.answers.append((start, text))
        self.t = start + caller_speech(text).seconds + TURN_S

    def ask(self, pid: str, text: str, after: float = 1.0, **params: object) -> None:
        self.say(pid, **params)
        self.answer(text, after)

    def wav(self, path: Path, tail: float = 15.0) -> Path:
        total = self.t + tail
        out = np.zeros(int(total * RATE), np.int16)
        for start, text in self.answers:
            voice = caller_speech(text).to_rate(RATE).samples
            i = int(start * RATE)
            out[i : i + len(voice)] = voice
        write_wav(path, out, RATE)
        return path


@pytest.fixture
def ivr_server(ivr_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    server = start_ivr(ivr_home, tmp_path, "--fixtures", str(fixtures))
    yield server
    server.stop()


def test_account_recovery_by_speech_from_baresip(ivr_server, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase(settings.prompts_dir, "en-US")
    line = Timeline(settings)
    line.say("welcome")
    line.answer("I forgot my password")  # over the menu prompt
    line.ask("confirm_caller_id", "yes", last4=SpokenDigits("8000"))
    line.say("code_sent", last4=SpokenDigits("8000"))
    line.ask("verification_code", "four eight two, nine one three")
    line.ask("confirm_verification_code", "yes", code=SpokenDigits("482913"))
    line.say("walkthrough_text_offer")  # "text me" sends the steps: said before step 1
    steps = kb.get("reset_password").steps
    for n, step in enumerate(steps, 1):
        line.say("walkthrough_step", number=n, total=len(steps), text=step)
        line.ask("step_done", "done")
    line.ask("recovery_worked", "yes")
    line.ask("anything_else", "no")
    wav = line.wav(tmp_path / "caller.wav")

    phone = Baresip.make(tmp_path / "phone", f"aufile,{wav}", user="13800138000")
    phone.start(f"/dial sip:ivr@127.0.0.1:{ivr_server.port}", seconds=int(line.t) + 60)
    try:  # the IVR says goodbye and hangs up: the call's record is then complete
        (call,) = ivr_server.wait_records(1, timeout=line.t + 60)
    finally:
        phone.stop()
    assert call["outcome"] == "resolved", (call["states"], ivr_server.log.read_text()[-2000:])
    assert "reset_password" in json.loads(call["states"])
    heard = read_audio(phone.heard())
    rms = np.sqrt(np.mean(heard.samples.astype(np.float64) ** 2))
    assert heard.seconds > 30 and rms > 300  # the IVR's speech, not silence
