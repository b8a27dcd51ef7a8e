"""`ivr call` through the real sounddevice → PortAudio → ALSA → PulseAudio path.

A private PulseAudio daemon gives a pipe source (the caller's microphone: the test writes
speech into it in real time) and a null sink (the speaker: the test records its monitor).
No mocks of sounddevice: the IVR process opens the devices like on a desk PC.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from ivr.qa.synth import caller_speech
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("pulseaudio") is None, reason="PulseAudio not installed (make test installs it)"
)

RATE = 16000
ASOUNDRC = """pcm.!default { type pulse }
ctl.!default { type pulse }
pcm.caller { type pulse; device "caller" }
pcm.speaker { type pulse; device "out" }
"""


class Pulse:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.fifo = root / "in.fifo"
        (root / "run").mkdir()
        (root / ".asoundrc").write_text(ASOUNDRC)
        self.env = {
            "HOME": str(root),
            "XDG_RUNTIME_DIR": str(root / "run"),
            "PATH": "/usr/bin:/bin",
            "IVR_HOME": str(root / "ivr"),
        }
        self.daemon = subprocess.Popen(
            [
                "pulseaudio",
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-L",
                "module-native-protocol-unix",
                "-L",
                f"module-null-sink sink_name=out rate={RATE} channels=1",
                "-L",
                f"module-pipe-source source_name=caller file={self.fifo} format=s16le "
                f"rate={RATE} channels=1",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not self.fifo.exists():
            if time.monotonic() > deadline or self.daemon.poll() is not None:
                raise RuntimeError("PulseAudio did not start")
            time.sleep(0.05)
        self.out = root / "out.raw"
        self._stop = threading.Event()
        self._speech: list[np.ndarray] = []
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._writer.start()
        self.out = root / "out.raw"
        self.recorder = subprocess.Popen(
            [
                "parec",
                "-d",
                "out.monitor",
                f"--rate={RATE}",
                "--channels=1",
                "--format=s16le",
                str(self.out),
            ],
            env=self.env,
            start_new_session=True,
        )

    def say_repeatedly(self, text: str, every_sec: float) -> None:
        audio = caller_speech(text).to_rate(RATE).samples
        gap = np.zeros(int(every_sec * RATE) - len(audio), np.int16)
        self._speech = [np.concatenate([audio, gap])]

    def _write(self) -> None:
        """The caller's microphone, in real time: speech when asked for, silence otherwise."""
        fd = os.open(self.fifo, os.O_WRONLY)
        chunk = RATE // 50
        start = time.monotonic()
        n = 0
        pos = 0
        try:
            while not self._stop.is_set():
                if self._speech:
                    loop = self._speech[0]
                    data = np.take(loop, range(pos, pos + chunk), mode="wrap")
                    pos = (pos + chunk) % len(loop)
                else:
                    data = np.zeros(chunk, np.int16)
                os.write(fd, data.astype("<i2").tobytes())
                n += 1
                time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
        except BrokenPipeError:
            pass  # the sound server closed the pipe source first (a call that ended early)
        finally:
            os.close(fd)

    def played(self) -> np.ndarray:
        return np.fromfile(self.out, dtype="<i2") if self.out.exists() else np.zeros(0, np.int16)

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=5)
        for proc in (self.recorder, self.daemon):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Pulse]:
    p = Pulse(tmp_path)
    try:
        yield p
    finally:
        p.close()


def ivr_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ivr.cli", *args]


def run_ivr(pulse: Pulse, *args: str, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    """Run `ivr` to completion against the private sound server, no terminal attached."""
    return subprocess.run(
        ivr_cmd(*args),
        env=pulse.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def calls(pulse: Pulse) -> list[dict[str, object]]:
    return json.loads(run_ivr(pulse, "calls", "list", "--json").stdout)


def test_devices_lists_the_sound_devices(pulse: Pulse) -> None:
    out = run_ivr(pulse, "devices")
    assert out.returncode == 0 and "caller" in out.stdout and "speaker" in out.stdout


def test_spoken_call_through_the_sound_devices(pulse: Pulse) -> None:
    """The caller's speech reaches the dialog through the devices, is understood, and the
    prompts come out of the speaker.

    The caller says "agent" every 3.5 s; half-duplex mutes the microphone while a prompt
    plays, so the IVR takes speech turns only while it listens.
    """
    pulse.say_repeatedly("agent", every_sec=3.5)
    run = run_ivr(
        pulse,
        "call",
        "--input",
        "caller",
        "--output",
        "speaker",
        "--caller-id",
        "13800138000",
        "--record",
        str(pulse.root / "recorded"),
        timeout=150,
    )
    assert run.returncode == 0, run.stderr
    assert re.search(r"heard 'agent\.?' -> @agent", run.stdout), run.stdout
    # the microphone call is kept as a test call and promotes like a SIP call
    call_id = re.search(r"^call (\w+):", run.stdout, re.M).group(1)  # type: ignore[union-attr]
    out = pulse.root / "promoted"
    promoted = run_ivr(
        pulse,
        "qa",
        "promote",
        call_id,
        "--recordings",
        str(pulse.root / "recorded"),
        "--out",
        str(out),
    )
    assert promoted.returncode == 0, promoted.stderr
    test_call = yaml.safe_load((out / "call.yaml").read_text())
    assert test_call["expect"]["transfer_reason"] == "caller_request"
    assert any("audio" in turn for turn in test_call["turns"])
    assert "13800138000" not in (out / "call.yaml").read_text()
    played = pulse.played()
    frames = played[: len(played) // 320 * 320].astype(np.int32).reshape(-1, 320)
    loud = np.abs(frames).mean(axis=1)
    assert (loud > 300).sum() * 0.02 > 5.0, "the IVR's prompts did not come out of the speaker"
    record = calls(pulse)[0]
    assert record["channel"] == "microphone" and record["outcome"] == "transferred"
    assert record["transfer_reason"] == "caller_request"
    assert record["caller"] == "*******8000"


def _spawn_on_pty(pulse: Pulse, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ivr_cmd("call", "--input", "caller", "--output", "speaker", *extra),
        env=pulse.env,
        cwd=REPO,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master


def _end(proc: subprocess.Popen[bytes], master: int) -> None:
    """Close the terminal, make sure the process is gone, release its pipe."""
    os.close(master)
    _gone(proc)


def _read_until(proc: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"did not see {text!r} in {seen.decode(errors='replace')}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_keys_typed_on_the_terminal_reach_the_flow(pulse: Pulse) -> None:
    proc, master = _spawn_on_pty(pulse)
    try:
        _read_until(proc, "How can I help you today?", 60)
        os.write(master, b"0")
        rest = _read_until(proc, "transferred caller_request", 60)
        assert "[key 0]" in rest
        assert proc.wait(timeout=60) == 0
    finally:
        _end(proc, master)


def test_ctrl_c_hangs_up_with_a_complete_record(pulse: Pulse) -> None:
    proc, master = _spawn_on_pty(pulse)
    try:
        _read_until(proc, "How can I help you today?", 60)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        _end(proc, master)
    record = calls(pulse)[0]
    assert record["outcome"] == "abandoned" and record["ended_at"] is not None
    assert record["states"][:2] == ["welcome", "main_menu"]


def test_push_to_talk_ignores_the_microphone_until_talk_is_on(pulse: Pulse) -> None:
    pulse.say_repeatedly("operator", every_sec=2.0)
    proc, master = _spawn_on_pty(pulse, "--push-to-talk")
    try:
        first = _read_until(proc, "CALLER", 60)
        first += _read_until(proc, "\n", 10)
        assert "[no_input]" in first  # the caller spoke all along, but talk was off
        os.write(master, b" ")
        rest = _read_until(proc, "[speech]", 60)
        assert "[talk on]" in rest
        os.write(master, b"q")
        proc.wait(timeout=60)
    finally:
        _end(proc, master)


def test_missing_device_is_a_clear_error(pulse: Pulse) -> None:
    run = run_ivr(pulse, "call", "--input", "no-such-microphone")
    assert run.returncode == 2
    assert "no input device 'no-such-microphone'" in run.stderr and "ivr devices" in run.stderr
    assert "Traceback" not in run.stderr


class HeadsetPulse(Pulse):
    """A headset: what the IVR plays leaks back into the microphone about 30 dB down (the
    speaker's recording, fed back into the pipe source), with the caller's voice on top."""

    ECHO_GAIN = 0.03

    def __init__(self, root: Path) -> None:
        self._voice: np.ndarray = np.zeros(0, np.int16)
        self._voice_at = float("inf")
        super().__init__(root)

    def speak_at(self, seconds: float, text: str) -> None:
        self._voice = caller_speech(text).to_rate(RATE).samples
        self._voice_at = time.monotonic() + seconds

    def _write(self) -> None:
        fd = os.open(self.fifo, os.O_WRONLY)
        chunk = RATE // 50
        start = time.monotonic()
        n = 0
        voice_pos = 0
        try:
            while not self._stop.is_set():
                data = np.zeros(chunk, np.float64)
                size = self.out.stat().st_size // 2 if self.out.exists() else 0
                if size >= chunk:  # the newest audio the speaker played: the echo
                    echo = np.fromfile(
                        self.out, dtype="<i2", count=chunk, offset=(size - chunk) * 2
                    )
                    data += echo * self.ECHO_GAIN
                if time.monotonic() >= self._voice_at and voice_pos < len(self._voice):
                    part = self._voice[voice_pos : voice_pos + chunk]
                    data[: len(part)] += part
                    voice_pos += chunk
                os.write(fd, np.clip(data, -32768, 32767).astype("<i2").tobytes())
                n += 1
                time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
        except BrokenPipeError:
            pass  # the sound server went away first
        finally:
            os.close(fd)


@pytest.fixture
def headset(tmp_path: Path) -> Iterator[HeadsetPulse]:
    p = HeadsetPulse(tmp_path)
    try:
        yield p
    finally:
        p.close()


def _turns(pulse: Pulse, call_id: str) -> list[dict[str, object]]:
    shown = json.loads(run_ivr(pulse, "calls", "show", call_id, "--json").stdout)
    return list(shown["turns"])


def _spawn_echo_aware(headset: HeadsetPulse) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ivr_cmd("call", "--echo", "echo-aware", "--input", "caller", "--output", "speaker"),
        env=headset.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _gone(proc: subprocess.Popen[bytes]) -> None:
    """Make sure the process (and its session) is gone, release its pipe."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_echo_aware_ignores_its_own_prompt_in_the_headset(headset: HeadsetPulse) -> None:
    proc = _spawn_echo_aware(headset)
    try:  # the welcome, the menu prompt (leaking back), then listening in silence
        _read_until(proc, "How can I help you today?", 60)
        first = _read_until(proc, "CALLER", 90)
        first += _read_until(proc, "\n", 10)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        _gone(proc)
    record = calls(headset)[0]
    turns = _turns(headset, str(record["id"]))
    assert turns and turns[0]["ask"] == "main_menu"
    assert turns[0]["mode"] == "no_input", (turns, first)  # the echo was never a turn


def test_echo_aware_takes_the_callers_speech_over_the_prompt(headset: HeadsetPulse) -> None:
    proc = _spawn_echo_aware(headset)
    try:  # the caller says "agent" a few seconds into the menu prompt, over it
        _read_until(proc, "How can I help you today?", 60)
        headset.speak_at(3.0, "agent")
        _read_until(proc, "transferred caller_request", 90)
        assert proc.wait(timeout=60) == 0
    finally:
        _gone(proc)
    record = calls(headset)[0]
    assert record["outcome"] == "transferred" and record["transfer_reason"] == "caller_request"
    first = _turns(headset, str(record["id"]))[0]
    assert first["ask"] == "main_menu" and first["value"] == "@agent"
