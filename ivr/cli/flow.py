"""`ivr` commands: call flow diagrams."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_flow_graph(args: argparse.Namespace) -> int:
    from ivr.flows.graph import Highlight, draw

    highlight = None
    if args.coverage:
        from ivr.qa.coverage import flow_coverage
        from ivr.qa.results import load_run

        cov = flow_coverage([c for run in args.coverage for c in load_run(Path(run))["calls"]])
        steps = {(t.source, t.dest) for t in cov.exercised}
        steps |= {(src, dest) for dest, sources in cov.wildcard_uses.items() for src in sources}
        highlight = Highlight(states=cov.visited, steps=steps)
    data = draw(args.name, args.format, highlight=highlight)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output}")
    elif args.format == "mermaid":
        sys.stdout.write(data.decode())
    else:
        print(f"ivr: {args.format} is binary; give -o FILE", file=sys.stderr)
        return 2
    return 0


def register(sub: Any) -> None:
    fw = sub.add_parser("flow", help="call flows").add_subparsers(dest="flow", required=True)
    fg = fw.add_parser("graph", help="draw a flow's state machine from its definition")
    fg.add_argument(
        "name",
        help="call (everything), entry, account_recovery, live_streaming, "
        "content_review, ticket_status or feedback",
    )
    fg.add_argument("--format", choices=("mermaid", "svg", "png"), default="mermaid")
    fg.add_argument("-o", "--output", help="file to write (required for svg and png)")
    fg.add_argument(
        "--coverage",
        action="append",
        metavar="RUN.json",
        help="colour what this `ivr qa run --json` document exercised (green) and not (red)",
    )
    fg.set_defaults(func=cmd_flow_graph)
