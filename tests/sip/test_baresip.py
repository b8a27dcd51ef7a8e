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
from tests.sip.peers import Baresip, start_ivr
from tests.sip.test_sipp import FIXTURES

RATE = 16000


class Timeline:
    """When the IVR will be asking what: the caller's answers are placed just after each
    prompt starts (the IVR takes speech over its own prompt at every ask)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.book = PromptBook(settings.prompts_dir, "en-US")
        self.synth = Synthesizer(settings.cache_dir / "prompts")
        self.t = 0.0
        self.answers: list[tuple[float, str]] = []

    def seconds(self, pid: str, **params: object) -> float:
        speech = self.book.speech(
            pid, params={"brand": self.settings.brand, **params}, voice=self.settings.voice
        )
        return self.synth.render(speech, voice="en-us", sample_rate=RATE).seconds

    def say(self, pid: str, **params: object) -> None:
        self.t += self.seconds(pid, **params)

    def answer(self, text: str, after: float = 2.0) -> None:
        start = self.t + after
        self.answers.append((start, text))
        self.t = start + caller_speech(text).seconds + 1.5  # endpointing and the reply

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
    line.answer("I forgot my password")
    line.answer("yes")
    line.say("code_sent", last4=SpokenDigits("8000"))
    line.answer("four eight two, nine one three")
    line.answer("yes")
    line.say("walkthrough_text_offer")  # "text me" sends the steps: said before step 1
    for n, step in enumerate(kb.get("reset_password").steps, 1):
        line.say("walkthrough_step", number=n, total=4, text=step)
        line.answer("done")
    line.answer("yes")
    line.answer("no")
    wav = line.wav(tmp_path / "caller.wav")

    phone = Baresip.make(tmp_path / "phone", f"aufile,{wav}", user="13800138000")
    phone.start(f"/dial sip:ivr@127.0.0.1:{ivr_server.port}", seconds=int(line.t) + 30)
    phone.wait(line.t + 60)

    (call,) = ivr_server.wait_records(1, timeout=30)
    assert call["outcome"] == "resolved", (call["states"], ivr_server.log.read_text()[-2000:])
    assert "reset_password" in json.loads(call["states"])
    heard = read_audio(phone.heard())
    rms = np.sqrt(np.mean(heard.samples.astype(np.float64) ** 2))
    assert heard.seconds > 30 and rms > 300  # the IVR's speech, not silence
