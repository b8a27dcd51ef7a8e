"""`ivr` commands: answering SIP calls."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any, Final

from ivr.agents.routing import PBX_WAIT_S, RING_S
from ivr.cli.common import DB_HELP, settings_for, store_for

MAX_WAIT_S: Final = 600.0  # an hour-long ring is a typing mistake, not a policy


def cmd_serve(args: argparse.Namespace) -> int:
    from ivr.serve import ServeOptions, Server, load_fixtures
    from ivr.session import Runtime
    from ivr.speech.processes import set_worker_nice

    settings = settings_for(args)
    if args.host not in ("127.0.0.1", "::1", "localhost") and not (
        args.allow or settings.sip.users
    ):
        print(
            f"ivr: serving on {args.host} needs --allow NETWORK for the peers (PBX, proxy) "
            "that may send calls, or SIP users in the configuration ([sip.users]) who must "
            "authenticate; everything else gets 403",
            file=sys.stderr,
        )
        return 2
    for flag, seconds in (("--agent-ring", args.agent_ring), ("--agent-wait", args.agent_wait)):
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_WAIT_S):
            print(
                f"ivr: {flag} takes seconds between 0 and {MAX_WAIT_S:.0f}, got {seconds}",
                file=sys.stderr,
            )
            return 2
    set_worker_nice(settings.asr.worker_nice)  # before the runtime starts any worker
    runtime = Runtime(settings, store=store_for(args, settings))
    options = ServeOptions(
        host=args.host,
        port=args.port,
        max_calls=args.max_calls,
        agent_uri=args.agent,
        allowed_peers=tuple(args.allow or ()),
        record_dir=Path(args.record) if args.record else None,
        fixtures=load_fixtures(Path(args.fixtures)) if args.fixtures else None,
        grace_s=args.grace,
        ring_s=args.ring,
        agent_ring_s=args.agent_ring,
        agent_wait_s=args.agent_wait,
        server_id=args.server_id,
    )
    server = Server(settings, options, runtime)
    logging.getLogger("ivr").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    server.serve_forever()
    return 0


def register(sub: Any) -> None:
    sv = sub.add_parser("serve", help="answer SIP calls")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=5080, help="SIP port, UDP (default 5080)")
    sv.add_argument("--db", help=DB_HELP)
    sv.add_argument("--record", help="folder: each call saved as a test call (call.yaml)")
    sv.add_argument("--fixtures", help="a test call's fixtures block (accounts, code, tickets)")
    sv.add_argument("--agent", help="agents' SIP address for transfers, e.g. sip:agents@pbx:5060")
    sv.add_argument(
        "--allow",
        action="append",
        help="trusted network: calls without authentication (repeatable; default loopback);"
        " others authenticate as [sip.users] or get 403",
    )
    sv.add_argument(
        "--max-calls", type=int, default=50, help="concurrent calls (then 503, Retry-After)"
    )
    sv.add_argument("--grace", type=float, default=20.0, help="seconds calls get on SIGTERM")
    sv.add_argument("--ring", type=float, default=0.5, help="seconds of ringing before answer")
    sv.add_argument(
        "--agent-ring",
        type=float,
        default=RING_S,
        help=f"seconds a desk agent's phone may ring (default {RING_S:.0f})",
    )
    sv.add_argument(
        "--agent-wait",
        type=float,
        default=PBX_WAIT_S,
        help="seconds the --agent address may take to answer before the caller is told"
        f" that all agents are busy (default {PBX_WAIT_S:.0f})",
    )
    sv.add_argument(
        "--server-id",
        help="name of this server's calls in the store (default host:port); a restart closes"
        " the calls the same name left in progress",
    )
    sv.add_argument("--locale", help="default locale (the dialled number may choose another)")
    sv.set_defaults(func=cmd_serve)
