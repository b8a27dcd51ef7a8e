"""Transfer over SIP: the caller asks for a person, the IVR sends a REFER, the caller's phone
calls the agents' address, and caller and agent hear each other."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import numpy as np

from ivr.speech.audio import read_audio, write_wav
from tests.sip.peers import Baresip, start_ivr
from tests.sip.test_baresip import RATE, Timeline

CALLER_TONE = 700.0
AGENT_TONE = 440.0
BUSY = "All our agents are busy right now"
AGENT_HEARS_TONE_S = 8.0


def tone_level(samples: np.ndarray, rate: int, hz: float) -> float:
    """How much of the signal's energy sits at ``hz`` (0..1)."""
    x = samples.astype(np.float64)
    if not len(x) or not np.any(x):
        return 0.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = (freqs > hz - 15) & (freqs < hz + 15)
    return float(spectrum[band].sum() / spectrum.sum())


def test_caller_reaches_the_agent_phone(ivr_home: Path, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(RATE * 120) / RATE
    write_wav(
        tmp_path / "agent.wav", (np.sin(2 * np.pi * AGENT_TONE * t) * 6000).astype(np.int16), RATE
    )
    agent = Baresip.make(
        tmp_path / "agent", f"aufile,{tmp_path / 'agent.wav'}", answer=True, user="agents"
    )
    agent.start(seconds=150)
    server = start_ivr(ivr_home, tmp_path, "--agent", f"sip:agents@127.0.0.1:{agent.port}")
    try:
        line = Timeline(settings)
        line.say("welcome")
        line.answer("agent")
        words_end = line.t
        wav = line.wav(tmp_path / "speech.wav", tail=0)
        speech = read_audio(wav).samples
        t = np.arange(int(RATE * 40)) / RATE
        tone = (np.sin(2 * np.pi * CALLER_TONE * t) * 6000).astype(np.int16)
        # the caller's phone plays its file from the start on each call: to the IVR, the words,
        # then a tone the IVR no longer listens to (it is transferring); to the agent, the
        # words again, then the tone for the agent to hear
        pause = np.zeros(RATE * 3, np.int16)
        write_wav(tmp_path / "caller.wav", np.concatenate([speech, pause, tone]), RATE)
        caller = Baresip.make(
            tmp_path / "caller", f"aufile,{tmp_path / 'caller.wav'}", user="13800138000"
        )
        caller.start(f"/dial sip:ivr@127.0.0.1:{server.port}", seconds=int(words_end) + 60)
        try:
            (call,) = server.wait_records(1, timeout=words_end + 60)
            agent.wait_for_call(timeout=30)
            # the agent hears the file again from its start: the words, the pause, then the tone
            time.sleep(words_end + len(pause) / RATE + AGENT_HEARS_TONE_S)
        finally:
            caller.stop()
    finally:
        agent.stop()
        server.stop()
    assert call["outcome"] == "transferred" and call["transfer_reason"] == "caller_request"
    # the agent heard the caller (the caller's tone), and the caller heard the agent
    at_agent = read_audio(agent.heard())
    assert at_agent.seconds > 5
    assert tone_level(at_agent.samples, at_agent.rate, CALLER_TONE) > 0.3
    at_caller = read_audio(sorted((tmp_path / "caller" / "rec").glob("dump-*-dec.wav"))[-1])
    assert tone_level(at_caller.samples, at_caller.rate, AGENT_TONE) > 0.3


def ivr_said(db: Path) -> str:
    """Everything the IVR has said so far, on every call of the store."""
    import sqlite3

    with closing(sqlite3.connect(db)) as conn:
        return " ".join(
            r[0] for r in conn.execute("SELECT text FROM transcript WHERE speaker = 'ivr'")
        )


def test_no_agent_answers(ivr_home: Path, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The agents' address does not answer: the caller is told, and the case stays queued."""
    import sqlite3

    from tests.sip.peers import free_port

    nobody = f"sip:agents@127.0.0.1:{free_port()}"
    server = start_ivr(ivr_home, tmp_path, "--agent", nobody, "--agent-wait", "6")
    try:
        line = Timeline(settings)
        line.say("welcome")
        line.answer("agent")
        wav = line.wav(tmp_path / "caller.wav", tail=60)
        caller = Baresip.make(tmp_path / "caller", f"aufile,{wav}", user="13800138000")
        caller.start(f"/dial sip:ivr@127.0.0.1:{server.port}", seconds=int(line.t) + 60)
        # told once the agents' address has not answered for --agent-wait seconds
        server.wait_log("no agent answered", timeout=line.t + 40)
        deadline = time.monotonic() + 30
        while BUSY not in ivr_said(server.db) and time.monotonic() < deadline:
            time.sleep(0.5)
        caller.stop()
        server.wait_log('"event": "call_ended"', timeout=30)
        (call,) = server.wait_records(1)
    finally:
        server.stop()
    assert call["outcome"] == "transferred"
    assert BUSY in ivr_said(server.db)
    conn = sqlite3.connect(server.db)
    (status,) = conn.execute("SELECT status FROM agent_queue WHERE call_id = ?", (call["id"],))
    assert status == ("waiting",)
