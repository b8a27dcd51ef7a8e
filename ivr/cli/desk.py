"""`ivr desk` (the agents' web application) and `ivr report` (the supervisor's numbers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ivr.cli.common import DB_HELP, settings_for, store_for

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cmd_desk(args: argparse.Namespace) -> int:
    from ivr.desk.server import run

    store = store_for(args, settings_for(args))
    if args.host not in LOOPBACK and not args.secure_cookies:
        print(
            "ivr: the desk on a network address must sit behind HTTPS: add --secure-cookies "
            "(and a TLS proxy in front)",
            file=sys.stderr,
        )
        return 2
    print(f"ivr desk: http://{args.host}:{args.port}/", flush=True)
    run(store, host=args.host, port=args.port, secure_cookies=args.secure_cookies)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ivr.agents.report import day_report

    store = store_for(args, settings_for(args))
    try:
        report = day_report(store, args.day)
    except ValueError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"day {report.day}: {report.calls} calls")
    print(f"  resolved without an agent: {report.resolved} ({report.containment:.0%})")
    print(f"  transferred: {report.transferred}, abandoned: {report.abandoned}")
    for reason, n in report.transfers_by_reason.items():
        print(f"    {reason}: {n}")
    for flow, seconds in report.avg_seconds_by_flow.items():
        print(f"  average {flow}: {seconds:.0f} s")
    print("  funnel (reached / hung up here):")
    for step in report.funnel:
        print(f"    {step['state']:28s} {step['reached']:5d} {step['left_here']:5d}")
    return 0


def register(sub: Any) -> None:
    dk = sub.add_parser("desk", help="the agent desk (web), beside ivr serve")
    dk.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dk.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    dk.add_argument("--db", help=DB_HELP)
    dk.add_argument("--secure-cookies", action="store_true", help="session cookies only over HTTPS")
    dk.set_defaults(func=cmd_desk)
    rp = sub.add_parser("report", help="a day's calls: containment, transfers, funnel")
    rp.add_argument("--day", help="YYYY-MM-DD (default today)")
    rp.add_argument("--json", action="store_true", help="one JSON document (as GET /api/report)")
    rp.add_argument("--db", help=DB_HELP)
    rp.set_defaults(func=cmd_report)
