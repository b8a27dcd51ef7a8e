"""The `ivr` command: one module per command group, each with a `register` function."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys

from ivr import __version__
from ivr.cli import agents, audio_io, db, demo, desk, doctor, flow, qa, records, serve, sip, speech
from ivr.errors import IvrError
from ivr.logs import log_as_command

GROUPS = (demo, qa, speech, records, flow, serve, audio_io, doctor, desk, agents, db, sip)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ivr", description="Offline telephone IVR and voice assistant."
    )
    p.add_argument("--version", action="version", version=f"ivr {__version__}")
    p.add_argument(
        "--config", help="TOML configuration file (default: $IVR_CONFIG or <home>/ivr.toml)"
    )
    p.add_argument("--home", help="data directory (default: $IVR_HOME or ~/.local/share/ivr)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_as_command(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except IvrError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"ivr: database error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):  # PostgreSQL (imported only when used)
            print(f"ivr: database error: {str(exc).strip()}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130
