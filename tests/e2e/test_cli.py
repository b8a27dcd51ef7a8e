"""The `ivr` command as a user runs it (subprocesses, real engines, a temporary home)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.dialog.prompt_cache import static_segments
from tests.conftest import REPO


def ivr(home: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={"IVR_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


def test_demo_plays_a_whole_call(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo.wav"
    run = ivr(home, "demo", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "outcome: resolved" in run.stdout
    assert "CALLER : [speech] heard 'yes' -> yes" in run.stdout
    assert "482913" not in run.stdout  # the code is never shown
    with wave.open(str(out)) as w:
        assert w.getnchannels() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    caller, ivr_side = np.abs(data[:, 0]).mean(), np.abs(data[:, 1]).mean()
    assert caller > 50 and ivr_side > 50  # both sides really speak
    demo_db = home / "demo.sqlite3"  # the demo's own store, beside the service's
    assert f"--db {demo_db}" in run.stdout
    listing = ivr(home, "calls", "list", "--json", "--db", str(demo_db))
    calls = json.loads(listing.stdout)
    assert calls[0]["outcome"] == "resolved" and calls[0]["caller"] == "*******8000"
    assert not (home / "ivr.sqlite3").exists()  # nothing simulated in the service's store
    broken = ivr(home, "calls", "list", "--db", str(tmp_path))  # a folder, not a database
    assert broken.returncode == 2 and "database" in broken.stderr


def test_demo_runs_again_and_again(tmp_path: Path) -> None:
    """Each demo is a new store: its recovery attempts never add up to the home's limits."""
    home = tmp_path / "home"
    home.mkdir()
    limits = "[recovery]\nattempts_per_caller = 1\nattempts_per_account = 1\n"
    (home / "ivr.toml").write_text(limits)
    for _ in range(2):  # a second attempt within the window would be held in a shared store
        run = ivr(home, "demo", "--out", str(tmp_path / "demo.wav"))
        assert run.returncode == 0, run.stderr
        assert "outcome: resolved" in run.stdout and "security_hold" not in run.stdout
    listing = ivr(home, "calls", "list", "--json", "--db", str(home / "demo.sqlite3"))
    assert len(json.loads(listing.stdout)) == 1  # the last demo's call alone


def test_calls_list_and_show(home: Path, tmp_path: Path) -> None:
    from ivr.config import load_settings
    from ivr.qa.runner import QaRunner

    runner = QaRunner(load_settings(home=home), db_dir=tmp_path)
    report = runner.run_path(REPO / "tests" / "calls" / "three_wrong_codes" / "call.yaml")
    db = next(tmp_path.glob("*.sqlite3"))
    listing = ivr(home, "calls", "list", "--db", str(db))
    assert report.call_id in listing.stdout and "verification_failed" in listing.stdout
    assert "*******8000" in listing.stdout and "13800138000" not in listing.stdout
    shown = ivr(home, "calls", "show", report.call_id[:8], "--db", str(db), "--json")
    record = json.loads(shown.stdout)
    assert record["outcome"] == "transferred"
    assert [t["ask"] for t in record["turns"]][:2] == ["main_menu", "confirm_caller_id"]
    assert record["states"][-1] == "transfer"
    assert all("111111" not in line["text"] for line in record["transcript"])
    missing = ivr(home, "calls", "show", "nope", "--db", str(db))
    assert missing.returncode == 1 and "no call" in missing.stderr


def test_say_rate_and_prompts_build(home: Path, tmp_path: Path, zh_prompts_built) -> None:  # type: ignore[no-untyped-def]
    slow, fast = tmp_path / "slow.wav", tmp_path / "fast.wav"
    assert ivr(home, "say", "Your code was sent.", "-o", str(slow), "--rate", "110").returncode == 0
    assert ivr(home, "say", "Your code was sent.", "-o", str(fast), "--rate", "190").returncode == 0
    with wave.open(str(slow)) as a, wave.open(str(fast)) as b:
        assert a.getnframes() > 1.3 * b.getnframes() > 0
    # The session's zh-CN build (tests/integration/test_voice.py checks what it holds) with
    # three 8 kHz segments gone: the command makes those three and leaves the rest.
    built, _ = zh_prompts_built
    cache = home / "cache" / "prompts"
    shutil.copytree(built.cache_dir / "prompts", cache, dirs_exist_ok=True)
    narrow = sorted(p for p in cache.rglob("*.wav") if _rate(p) == 8000)
    for gone in narrow[:3]:
        gone.unlink()
    total = len(static_segments(built, "zh-CN"))
    assert len(narrow) == total
    lacking = ivr(home, "doctor").stdout  # and `ivr serve` logs the same warning at start
    assert f"prompt cache zh-CN 8000 Hz: {total - 3} of {total}" in lacking
    assert f"prompt cache lacks 3 of {total} segments for zh-CN at 8000 Hz" in lacking
    assert f"prompt cache zh-CN 16000 Hz: {total} of {total}" in lacking
    made = ivr(home, "prompts", "build", "--locale", "zh-CN", "--sample-rates", "8000")
    assert made.returncode == 0, made.stderr
    assert "(3 synthesised" in made.stdout
    assert all(p.exists() and _rate(p) == 8000 for p in narrow[:3])
    whole = ivr(home, "doctor").stdout
    assert f"prompt cache zh-CN 8000 Hz: {total} of {total}" in whole
    assert "segments for zh-CN" not in whole
    again = ivr(home, "prompts", "build", "--locale", "zh-CN", "--sample-rates", "8000")
    assert again.returncode == 0
    assert "(0 synthesised" in again.stdout


def _rate(path: Path) -> int:
    with wave.open(str(path)) as w:
        return w.getframerate()


def test_doctor_and_models(home: Path, tmp_path: Path) -> None:
    doctor = ivr(home, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "speech input en-US: pocketsphinx" in doctor.stdout
    assert "yes/no and menus: grammar+whisper (a quick opinion over 10 s first)" in doctor.stdout
    assert "digits: whisper (numbers over 15 s first)" in doctor.stdout
    assert "voice en-US: Piper 'en_US-joe-medium'" in doctor.stdout
    assert "voice zh-CN: espeak-ng 'cmn-latn-pinyin'" in doctor.stdout
    listed = ivr(home, "models", "list")
    assert "ko-KR" in listed.stdout
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    bad = ivr(home, "models", "install", str(junk))
    assert bad.returncode == 2 and "ivr:" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_config_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.toml"
    cfg.write_text("brand = 'X'\nno_such_setting = 1\n")
    run = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "--config", str(cfg), "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"IVR_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 2 and "unknown setting 'no_such_setting'" in run.stderr


def test_serve_refuses_agent_times_that_are_not_positive(home: Path) -> None:
    for flag, seconds in (("--agent-ring", "0"), ("--agent-wait", "inf"), ("--agent-wait", "-5")):
        run = ivr(home, "serve", "--port", "0", flag, seconds, timeout=60)
        assert run.returncode == 2, run.stdout + run.stderr
        assert f"{flag} takes seconds between 0 and 600, got" in run.stderr
        assert "Traceback" not in run.stderr
