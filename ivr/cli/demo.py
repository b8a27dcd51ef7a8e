"""`ivr` commands: a whole simulated call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ivr.cli.common import DEMO_CALLS, settings_for, show_live


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
    runner = QaRunner(settings, sample_rate=args.rate, db_file=settings.db_path)

    from ivr.channels.scripted import ScriptedChannel

    channel = ScriptedChannel(
        call.turns, sample_rate=args.rate, caller_id=call.caller_id, dialed=call.dialed
    )
    report = runner.run_call(call, channel=channel, observer=show_live)
    out = Path(args.out)
    write_wav(out, channel.stereo(), channel.sample_rate)
    print(f"outcome: {report.outcome}  (states: {' -> '.join(report.states)})")
    print(f"conversation written to {out} (stereo: caller left, IVR right)")
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
