"""`ivr serve`'s recognition and voice processes run nicer than the calls' process.

On a machine past its capacity the calls' media clock fell behind while recognition
workers took the CPU: prompts went out stretched and cut (README, *SIP under load*). Run
nicer, the workers take what the calls' process leaves. Real processes: a worker pool as
Whisper's and the voice's, and the grammar decoder's host processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.speech.asr.hosts import DecoderHosts
from ivr.speech.processes import WorkerPool, set_worker_nice, worker_nice


def _niceness() -> int:
    return os.nice(0)


@pytest.fixture
def nicer_by_five() -> Iterator[int]:
    before = worker_nice()
    set_worker_nice(5)
    yield min(19, os.nice(0) + 5)  # the niceness a worker should have
    set_worker_nice(before)


def test_a_pools_workers_run_nicer(nicer_by_five: int) -> None:
    pool = WorkerPool(1, what="test")
    try:
        assert pool.run(_niceness) == nicer_by_five
    finally:
        pool.close()


def test_the_grammar_decoders_hosts_run_nicer(nicer_by_five: int) -> None:
    hosts = DecoderHosts("en-US", 1, 1)
    try:
        hosts.warm()
        (pid,) = hosts.pids()
        assert os.getpriority(os.PRIO_PROCESS, pid) == nicer_by_five
    finally:
        hosts.close()


@pytest.mark.parametrize("value", ["-1", "20", '"low"'])
def test_worker_nice_must_be_a_niceness(tmp_path: Path, value: str) -> None:
    from ivr.config import load_settings

    config = tmp_path / "ivr.toml"
    config.write_text(f"[asr]\nworker_nice = {value}\n")
    with pytest.raises(ConfigError, match="worker_nice"):
        load_settings(config, home=tmp_path)
