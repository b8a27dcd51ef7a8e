"""`ivr db` commands: the store's schema version, upgrades, online backups, checks and
crash recovery."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ivr.cli.common import DB_HELP, settings_for, store_for


def cmd_db_version(args: argparse.Namespace) -> int:
    from ivr.services.migrations import LATEST

    store = store_for(args, settings_for(args))
    print(f"schema version {store.version} (this release writes {LATEST})")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    store = store_for(args, settings_for(args))  # opening the store upgrades it
    if store.upgraded:
        print(f"upgraded to schema version {store.version}: applied {store.upgraded}")
    else:
        print(f"schema version {store.version}: up to date")
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    target = Path(args.file)
    if target.exists() and not args.force:
        print(f"ivr: {target} exists (--force to replace it)", file=sys.stderr)
        return 2
    store = store_for(args, settings_for(args))
    if target.resolve() == store.path.resolve():
        print("ivr: the backup must go to another file than the database", file=sys.stderr)
        return 2
    target.parent.mkdir(parents=True, exist_ok=True)
    store.backup(target)
    print(f"backup of {store.path} (schema version {store.version}) written to {target}")
    return 0


def cmd_db_check(args: argparse.Namespace) -> int:
    from ivr.services.integrity import check_store

    store = store_for(args, settings_for(args))
    problems = check_store(store)
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems}, indent=2))
    else:
        for problem in problems:
            print(problem)
        print("ok" if not problems else f"{len(problems)} problems")
    return 0 if not problems else 1


def cmd_db_recover(args: argparse.Namespace) -> int:
    from ivr.services.calls import recover_interrupted

    if not args.all and not args.server:
        print("ivr: name the --server whose calls to close, or --all", file=sys.stderr)
        return 2
    store = store_for(args, settings_for(args))
    closed = recover_interrupted(store, server=None if args.all else args.server)
    print(f"closed {len(closed)} calls left in progress (abandoned, interrupted)")
    for call_id in closed:
        print(f"  {call_id}")
    return 0


def register(sub: Any) -> None:
    db = sub.add_parser(
        "db", help="the store: schema version, upgrade, backup, check"
    ).add_subparsers(dest="db", required=True)
    version = db.add_parser("version", help="the database's schema version")
    migrate = db.add_parser("migrate", help="upgrade the database to this release's schema")
    backup = db.add_parser("backup", help="an online, consistent copy (calls may go on)")
    backup.add_argument("file", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    check = db.add_parser("check", help="SQLite's integrity check and the services' rules")
    check.add_argument("--json", action="store_true")
    recover = db.add_parser(
        "recover", help="close calls a killed server left in progress (ivr serve does it)"
    )
    recover.add_argument("--server", help="the server's id (ivr serve --server-id; host:port)")
    recover.add_argument(
        "--all", action="store_true", help="every call in progress: only with all servers down"
    )
    for parser, func in (
        (version, cmd_db_version),
        (migrate, cmd_db_migrate),
        (backup, cmd_db_backup),
        (check, cmd_db_check),
        (recover, cmd_db_recover),
    ):
        parser.add_argument("--db", help=DB_HELP)
        parser.set_defaults(func=func)
