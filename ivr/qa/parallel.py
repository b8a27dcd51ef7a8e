"""Running a suite: each call once or ``repeat`` times, in this process or in ``jobs`` processes.

PocketSphinx holds the GIL, so parallel calls need processes; each worker builds one
runner (models, prompt cache) and reuses it for every call it is given. Results come back
in the suite's order whatever order the workers finish in, so ``-j 2`` reports exactly
what ``-j 1`` does. With ``repeat`` each call runs several times; a call whose outcome or
recognised values vary between runs is flaky.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.util
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ivr.config import Settings
from ivr.logs import log_as_worker
from ivr.qa.runner import CallReport, QaRunner
from ivr.speech.asr.hosts import close_shared_hosts
from ivr.speech.asr.pool import close_shared_pools
from ivr.speech.espeak import close_voice_process


@dataclass(frozen=True)
class RunOptions:
    jobs: int = 1
    repeat: int = 1
    sample_rate: int = 16000
    record_dir: Path | None = None
    condition: str | None = None  # the caller condition (ivr.qa.conditions), if asked for


Progress = Callable[[CallReport, int], None]  # a finished run and its repeat index

_worker: QaRunner | None = None  # one runner per worker process


def _init_worker(settings: Settings, options: RunOptions, log_level: int) -> None:
    global _worker
    log_as_worker(log_level)  # as the command does (-v)
    _worker = _runner(settings, options)
    # worker processes end through multiprocessing's exit, which runs its finalizers, not
    # atexit, and then waits for its children: the recognition workers and the voice process
    # must be stopped first
    multiprocessing.util.Finalize(None, close_shared_pools, exitpriority=20)
    multiprocessing.util.Finalize(None, close_shared_hosts, exitpriority=20)
    multiprocessing.util.Finalize(None, close_voice_process, exitpriority=20)
    multiprocessing.util.Finalize(None, _worker.close, exitpriority=10)


def _runner(settings: Settings, options: RunOptions) -> QaRunner:
    return QaRunner(
        settings,
        sample_rate=options.sample_rate,
        record_dir=options.record_dir,
        condition=options.condition,
    )


def _run_one(path: Path, index: int) -> CallReport:
    assert _worker is not None, "worker not initialised"
    return _run(_worker, path, index)


def _run(runner: QaRunner, path: Path, index: int) -> CallReport:
    record_dir = runner.record_dir
    if index > 0:
        runner.record_dir = None  # the first run's recording is the call's recording
    try:
        return runner.run_path(path)
    finally:
        runner.record_dir = record_dir


def run_suite(
    settings: Settings,
    paths: list[Path],
    options: RunOptions,
    *,
    progress: Progress | None = None,
) -> list[CallReport]:
    """One report per call, in the order of ``paths``."""
    tasks = [(path, i) for path in paths for i in range(options.repeat)]
    runs: list[CallReport]
    if options.jobs <= 1 or len(tasks) <= 1:
        runner = _runner(settings, options)
        runs = []
        try:
            for path, i in tasks:
                runs.append(_run(runner, path, i))
                if progress is not None:
                    progress(runs[-1], i)
        finally:
            runner.close()
    else:
        context = multiprocessing.get_context("spawn")  # no forked copies of engine threads
        with ProcessPoolExecutor(
            max_workers=options.jobs,
            mp_context=context,
            initializer=_init_worker,
            initargs=(settings, options, logging.getLogger().getEffectiveLevel()),
        ) as pool:
            futures: list[Future[CallReport]] = [
                pool.submit(_run_one, path, i) for path, i in tasks
            ]
            if progress is not None:
                for (_path, i), future in zip(tasks, futures, strict=True):
                    future.add_done_callback(functools.partial(_report_done, progress, i))
            runs = [f.result() for f in futures]
    return [_merge(runs[n : n + options.repeat]) for n in range(0, len(runs), options.repeat)]


def _report_done(progress: Progress, index: int, future: Future[CallReport]) -> None:
    if not future.cancelled() and future.exception() is None:
        progress(future.result(), index)


def _merge(runs: list[CallReport]) -> CallReport:
    """The first run's report; with repeats, every run's outcome and whether they differ."""
    first = runs[0]
    if len(runs) == 1:
        return first
    failed = [r for r in runs if not r.passed]
    first.outcomes = [str(r.outcome) for r in runs]
    first.flaky = len({_signature(r) for r in runs}) > 1
    first.seconds = sum(r.seconds for r in runs)
    if failed and first.passed:
        first.failures = failed[0].failures
    if failed:
        first.passed = False
        first.error = f"failed in {len(failed)} of {len(runs)} runs: {failed[0].error}"
    return first


def _signature(report: CallReport) -> tuple[object, ...]:
    values = tuple((t.get("ask"), t.get("value")) for t in report.turns)
    return (report.outcome, report.passed, report.transfer_reason, values)
