"""`ivr` commands: test calls: run, synth, promote, diff, coverage."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ivr.cli.common import settings_for


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_qa_run(args: argparse.Namespace) -> int:
    from ivr.qa.diff import diff_runs, format_diff
    from ivr.qa.junit import write_junit
    from ivr.qa.parallel import RunOptions, run_suite
    from ivr.qa.results import load_run, run_document
    from ivr.qa.runner import CallReport
    from ivr.qa.testcall import find_calls

    if args.jobs < 1 or args.repeat < 1:
        _say("ivr: -j and --repeat take a number >= 1")
        return 2
    baseline = load_run(Path(args.baseline)) if args.baseline else None
    html = Path(args.html) if args.html else None
    record = Path(args.record) if args.record else (html / "audio" if html else None)
    options = RunOptions(
        jobs=args.jobs, repeat=args.repeat, sample_rate=args.rate, record_dir=record
    )

    conditions = _conditions(args.condition)

    def tag(report: CallReport) -> str:
        return f" [{report.condition}]" if len(conditions) > 1 else ""

    def progress(report: CallReport, index: int) -> None:
        mark = "PASS" if report.passed else "FAIL"
        run = f" (run {index + 1}/{args.repeat})" if args.repeat > 1 else ""
        _say(
            f"{mark} {report.name}{run}{tag(report)} ({report.path}) -> {report.outcome} "
            f"{report.transfer_reason or ''}"
        )
        if report.error:
            _say(f"     {report.error}")

    paths = find_calls([Path(p) for p in args.paths])
    reports = []
    for condition in conditions:  # the same suite in each caller condition
        where = record
        if record is not None and condition is not None and len(conditions) > 1:
            where = record / condition  # one folder of recordings per condition
        chosen = replace(options, condition=condition, record_dir=where)
        reports += run_suite(settings_for(args), paths, chosen, progress=progress)
    doc = run_document([r.as_dict() for r in reports])
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    if args.junit:
        write_junit(Path(args.junit), doc["calls"])
    if html is not None:
        from ivr.qa.html import write_report

        _say(f"report: {write_report(html, doc)}")
    for key in doc.get("flaky", []):
        _say(f"FLAKY {key}: outcomes vary between runs")
    _say(f"{doc['passed']} passed, {doc['failed']} failed")
    status = 0 if doc["failed"] == 0 and reports else 1
    if baseline is not None:
        diff = diff_runs(baseline, doc)
        for line in format_diff(diff):
            _say(line)
        if diff.has_regression:
            status = 1
    return status


def _conditions(chosen: list[str] | None) -> list[str | None]:
    from ivr.qa.conditions import Condition

    if not chosen:
        return [None]  # the calls as written, unlabelled
    if "all" in chosen:
        return [c.value for c in Condition]
    unique: list[str | None] = list(dict.fromkeys(chosen))
    return unique


def cmd_qa_diff(args: argparse.Namespace) -> int:
    from ivr.qa.diff import diff_runs, format_diff
    from ivr.qa.results import load_run

    diff = diff_runs(load_run(Path(args.old)), load_run(Path(args.new)))
    if args.json:
        print(json.dumps(diff.as_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(format_diff(diff)))
    return 1 if diff.has_regression else 0


def cmd_qa_coverage(args: argparse.Namespace) -> int:
    from ivr.qa.coverage import flow_coverage, format_coverage
    from ivr.qa.results import load_run

    calls = [c for run in args.runs for c in load_run(Path(run))["calls"]]
    cov = flow_coverage(calls)
    if args.json:
        print(json.dumps(cov.as_dict(), indent=2))
    else:
        print("\n".join(format_coverage(cov)))
    return 0


def cmd_qa_promote(args: argparse.Namespace) -> int:
    from ivr.cli.common import store_for
    from ivr.qa.promote import promote

    settings = settings_for(args)
    recordings = Path(args.recordings) if args.recordings else settings.recordings_dir
    fixtures = Path(args.fixtures) if args.fixtures else None
    store = store_for(args, settings)
    try:
        path = promote(
            store, args.call_id, recordings=recordings, out=Path(args.out), fixtures=fixtures
        )
    finally:
        store.close()
    print(f"wrote {path}")
    return 0


def cmd_qa_synth(args: argparse.Namespace) -> int:
    """Turn a test call's `say:` turns into WAV files and a call.yaml that uses them."""
    import yaml

    from ivr.qa.synth import write_caller_wav

    src = Path(args.path)
    src = src / "call.yaml" if src.is_dir() else src
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    out_dir = Path(args.out)
    (out_dir / "turns").mkdir(parents=True, exist_ok=True)
    for i, turn in enumerate(data.get("turns") or [], 1):
        if isinstance(turn, dict) and "say" in turn:
            wav = out_dir / "turns" / f"{i:02d}.wav"
            write_caller_wav(
                wav,
                str(turn["say"]),
                locale=data.get("locale", "en-US"),
                condition=args.condition,
            )
            data["turns"][i - 1] = {"audio": f"turns/{wav.name}", "text": turn["say"]}
    (out_dir / "call.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    print(f"wrote {out_dir / 'call.yaml'}")
    return 0


def register(sub: Any) -> None:
    qa = sub.add_parser(
        "qa", help="test calls: run, synth, promote, diff, coverage"
    ).add_subparsers(dest="qa", required=True)
    r = qa.add_parser("run", help="replay test calls and check what each expects")
    r.add_argument("paths", nargs="+", help="call.yaml files or folders of them")
    r.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    r.add_argument("--junit", help="write a JUnit XML report (turns and latency in system-out)")
    r.add_argument("--html", help="folder for an HTML report with each call's audio")
    r.add_argument("--baseline", help="an earlier run's JSON: report regressions against it")
    r.add_argument("-j", "--jobs", type=int, default=1, help="calls run in N processes")
    r.add_argument(
        "--repeat", type=int, default=1, help="run each call N times and report flaky calls"
    )
    r.add_argument(
        "--rate",
        type=int,
        default=16000,
        choices=(8000, 16000),
        help="channel sample rate (8000: telephone)",
    )
    r.add_argument("--record", help="folder for a stereo WAV of each call")
    r.add_argument(
        "--condition",
        action="append",
        choices=("clean", "phone", "noisy", "all"),
        help="caller condition: clean voice, phone line (8 kHz G.711), slow voice in noise; "
        "repeatable, 'all' runs the matrix (default clean)",
    )
    r.set_defaults(func=cmd_qa_run, locale=None)
    s = qa.add_parser("synth", help="write WAV files for a test call's `say:` turns")
    s.add_argument("path")
    s.add_argument("--out", required=True)
    s.add_argument("--condition", choices=("clean", "phone", "noisy"), default="clean")
    s.set_defaults(func=cmd_qa_synth)
    p = qa.add_parser("promote", help="turn a recorded call into a test call folder")
    p.add_argument("call_id", help="the call's id (or its first characters)")
    p.add_argument("--out", required=True, help="the test call folder to write")
    p.add_argument("--db", help="the database that holds the call record")
    p.add_argument(
        "--recordings", help="the folder `ivr serve --record` wrote (default: data directory)"
    )
    p.add_argument("--fixtures", help="the fixtures file the server ran with")
    p.set_defaults(func=cmd_qa_promote, locale=None)
    d = qa.add_parser("diff", help="regressions between two `ivr qa run --json` documents")
    d.add_argument("old")
    d.add_argument("new")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_qa_diff)
    c = qa.add_parser("coverage", help="flow states and transitions a run exercised")
    c.add_argument("runs", nargs="+", help="`ivr qa run --json` documents")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_qa_coverage)
