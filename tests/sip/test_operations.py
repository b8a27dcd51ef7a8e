"""Operating `ivr serve`: SIGTERM with calls in progress, `ivr calls list`, recorded calls
that replay as test calls, one JSON log line per call with the caller masked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.sip.peers import Scenario, end_process, run_sipp, start_ivr, start_sipp
from tests.sip.test_sipp import FIXTURES, RECOVERY_KEYS


def test_sigterm_ends_calls_cleanly(ivr_home: Path, tmp_path: Path) -> None:
    server = start_ivr(ivr_home, tmp_path, "--grace", "1")
    scenario = Scenario().invite().pause(60000).bye()  # a caller who would stay a minute
    sipp = start_sipp(scenario.xml(), server.port, tmp_path, calls=2)
    try:
        server.wait_records(2, timeout=20, finished=False)
        time.sleep(2)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    finally:
        sipp.kill()
        end_process(sipp)
        server.stop()
    rows = server.records()
    assert len(rows) == 2
    for row in rows:  # each record complete, the calls ended by us (the caller did not hang up)
        assert row["ended_at"] is not None and row["outcome"] == "abandoned"
    log = server.log.read_text()
    assert "shutting down" in log and "stopped after 2 calls" in log


TGKILL = {"x86_64": 234, "aarch64": 131}  # the system call that signals one thread


def _signal_thread(pid: int, tid: int, sig: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL[os.uname().machine], pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def test_sigterm_taken_by_any_thread_stops_the_server(ivr_home: Path, tmp_path: Path) -> None:
    """The kernel hands a process's SIGTERM to any of its threads that does not block it (on a
    busy machine, not always the main one). The server stopped only when the main thread took
    it: waiting on an event, it never heard a signal another thread took, and hung."""
    server = start_ivr(ivr_home, tmp_path)
    try:
        server.wait_log("speech recognition ready", 60)  # every thread of a running server
        pid = server.proc.pid
        others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
        assert others
        _signal_thread(pid, others[0], signal.SIGTERM)
        try:
            code = server.proc.wait(60)  # a liveness bound: it stops within a fraction of that
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, "SIGTERM taken by another thread did not stop the server"
    finally:
        server.stop()
    assert "stopped after 0 calls" in server.log.read_text()


def test_recorded_call_replays_and_shows_in_calls_list(ivr_home: Path, tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    record = tmp_path / "recorded"
    server = start_ivr(ivr_home, tmp_path, "--fixtures", str(fixtures), "--record", str(record))
    try:
        result = run_sipp(
            Scenario().invite().keys(RECOVERY_KEYS).wait_bye().xml(), server.port, tmp_path
        )
        assert result.returncode == 0, result.stderr
        server.wait_log('"event": "call_ended"', 30)
    finally:
        server.stop()
    env = {**os.environ, "IVR_HOME": str(ivr_home)}
    listed = subprocess.run(
        [sys.executable, "-m", "ivr", "calls", "list", "--json", "--db", str(server.db)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    (call,) = json.loads(listed.stdout)
    assert call["channel"] == "sip" and call["outcome"] == "resolved"
    assert call["caller"] == "*******8000"
    # the JSON log line of the call: masked caller, states, outcome; never the full number
    line = next(
        json.loads(x.split("ivr.serve: ", 1)[1])
        for x in server.log.read_text().splitlines()
        if '"call_ended"' in x
    )
    assert line["caller"] == "*******8000" and line["outcome"] == "resolved"
    assert 0 < line["audio_on_time"] <= 1  # the share of its audio the media clock sent on time
    assert "13800138000" not in server.log.read_text() and "482913" not in server.log.read_text()
    # the recorded call is a test call: replayed through the scripted channel, same outcome
    (folder,) = list(record.iterdir())
    text = (folder / "call.yaml").read_text()
    (folder / "call.yaml").write_text(text.replace("turns:", FIXTURES + "turns:", 1))
    replay = subprocess.run(
        [sys.executable, "-m", "ivr", "qa", "run", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    report = json.loads(replay.stdout)
    assert report["passed"] == 1, replay.stdout + replay.stderr


def test_serve_loads_speech_recognition_while_it_already_answers(
    ivr_home: Path, tmp_path: Path
) -> None:
    """The recognition workers load their Whisper model at start, not on the first caller's
    first answer (which then waited a second and more for it); the port answers meanwhile."""
    server = start_ivr(ivr_home, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log = server.log.read_text()
            if "speech recognition ready" in log or "not warmed" in log:
                break
            time.sleep(0.2)
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    finally:
        server.stop()
    assert log.index("ready on") < log.index("speech recognition ready in"), log
    assert children.split(), "no recognition worker was started"
