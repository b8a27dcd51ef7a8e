"""`ivr` commands: test calls: run, synth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ivr.cli.common import settings_for


def cmd_qa_run(args: argparse.Namespace) -> int:
    from ivr.qa.runner import QaRunner
    from ivr.qa.testcall import find_calls

    settings = settings_for(args)
    conditions = _conditions(args.condition)
    paths = find_calls([Path(p) for p in args.paths])
    reports = []
    engines = None
    for condition in conditions:
        runner = QaRunner(
            settings,
            sample_rate=args.rate,
            record_dir=Path(args.record) / condition if args.record else None,
            condition=condition,
        )
        engines = runner.engines = engines or runner.engines  # one model pool for every run
        for path in paths:
            report = runner.run_path(path)
            reports.append(report)
            mark = "PASS" if report.passed else "FAIL"
            print(
                f"{mark} [{condition}] {report.name} ({path}) -> {report.outcome} "
                f"{report.transfer_reason or ''}",
                file=sys.stderr,
            )
            if report.error:
                print(f"     {report.error}", file=sys.stderr)
    if engines is not None:
        engines.close()
    passed = sum(r.passed for r in reports)
    failed = len(reports) - passed
    rates = {
        c: sum(r.passed for r in reports if r.condition == c)
        / max(1, sum(r.condition == c for r in reports))
        for c in conditions
    }
    if len(conditions) > 1:
        for c, rate in rates.items():
            print(f"{c}: {rate:.0%} passed", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "passed": passed,
                    "failed": failed,
                    "conditions": rates,
                    "calls": [r.as_dict() for r in reports],
                },
                indent=2,
            )
        )
    if args.junit:
        _write_junit(Path(args.junit), reports)
    print(f"{passed} passed, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 and reports else 1


def _conditions(chosen: list[str] | None) -> list[str]:
    from ivr.qa.conditions import Condition

    if not chosen:
        return [Condition.CLEAN.value]
    if "all" in chosen:
        return [c.value for c in Condition]
    return list(dict.fromkeys(chosen))


def _write_junit(path: Path, reports: list[Any]) -> None:
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="ivr-qa",
        tests=str(len(reports)),
        failures=str(sum(not r.passed for r in reports)),
    )
    for r in reports:
        case = ET.SubElement(
            suite, "testcase", name=r.name, classname=r.path, time=f"{r.seconds:.2f}"
        )
        if not r.passed:
            ET.SubElement(case, "failure", message=r.error or "failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


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
    qa = sub.add_parser("qa", help="test calls: run, synth").add_subparsers(
        dest="qa", required=True
    )
    r = qa.add_parser("run", help="replay test calls and check what each expects")
    r.add_argument("paths", nargs="+", help="call.yaml files or folders of them")
    r.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    r.add_argument("--junit", help="write a JUnit XML report")
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
