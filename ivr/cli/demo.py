"""`ivr` commands: a whole simulated call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ivr.cli.common import DEMO_CALLS, settings_for, show_live

DEMO_DB = "demo.sqlite3"  # in the home, beside the service's own store


def cmd_demo(args: argparse.Namespace) -> int:
    from ivr.qa.runner import QaRunner
    from ivr.qa.testcall import load_call
    from ivr.speech.audio import write_wav

    settings = settings_for(args)
    demo = DEMO_CALLS.get(settings.locale)
    if demo is None:
        print(f"ivr: no demo call for {settings.locale}", file=sys.stderr)
        return 2
    call = load_call(demo)
    print(f"ivr demo: {call.name} ({settings.locale})", flush=True)
    # a store of its own, new each run: the demo's recovery attempts must not count against
    # the home's limits (run often, they would hold the demo caller), nor its calls reach a desk
    db = settings.home / DEMO_DB
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    runner = QaRunner(settings, sample_rate=args.rate, db_file=db)

    from ivr.channels.scripted import ScriptedChannel

    channel = ScriptedChannel(
        call.turns, sample_rate=args.rate, caller_id=call.caller_id, dialed=call.dialed
    )
    report = runner.run_call(call, channel=channel, observer=show_live)
    out = Path(args.out)
    write_wav(out, channel.stereo(), channel.sample_rate)
    print(f"outcome: {report.outcome}  (states: {' -> '.join(report.states)})")
    print(f"conversation written to {out} (stereo: caller left, IVR right)")
    print(f"call record: ivr calls show {report.call_id} --db {db}")
    if not report.passed:
        print(f"demo call did not go as scripted: {report.error}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="play a whole simulated account-recovery call")
    d.add_argument("--out", default="demo.wav", help="stereo WAV of the call (default demo.wav)")
    d.add_argument("--rate", type=int, default=16000, choices=(8000, 16000), help="channel rate")
    d.add_argument("--locale", help="locale (default from configuration)")
    d.set_defaults(func=cmd_demo)
