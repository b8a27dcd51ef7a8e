"""`ivr agents`: the accounts of agents and supervisors who work the desk."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from ivr.cli.common import DB_HELP, settings_for, store_for


def _directory(args: argparse.Namespace) -> Any:
    from ivr.agents.directory import Directory

    return Directory(store_for(args, settings_for(args)))


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("ivr: no terminal to ask for the password; use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("ivr: the passwords differ")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    from ivr.agents.directory import Role

    directory = _directory(args)
    languages = tuple(x.strip() for x in (args.languages or "").split(",") if x.strip())
    agent = directory.add(
        args.name,
        role=Role(args.role),
        password=_read_password(args),
        sip_uri=args.sip,
        languages=languages,
    )
    print(f"added {agent.role} {agent.name}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    agents = _directory(args).all()
    if args.json:
        print(json.dumps([a.as_dict() for a in agents], indent=2))
        return 0
    for a in agents:
        print(
            f"{a.name:16s} {a.role:10s} {'disabled' if a.disabled else a.state:10s} "
            f"{','.join(a.languages) or 'any':12s} {a.sip_uri or '-'}"
        )
    if not agents:
        print("no accounts yet: ivr agents add NAME --role agent")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    _directory(args).disable(args.name)
    print(f"disabled {args.name}: sessions ended, tokens revoked")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    directory = _directory(args)
    if args.revoke:
        n = directory.revoke_tokens(args.name)
        print(f"revoked {n} token(s) of {args.name}")
        return 0
    print(directory.new_token(args.name))
    return 0


def register(sub: Any) -> None:
    ag = sub.add_parser("agents", help="agent and supervisor accounts for the desk")
    agsub = ag.add_subparsers(dest="agents_command", required=True)
    add = agsub.add_parser("add", help="add an account (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    add.add_argument("--sip", help="the agent's phone, e.g. sip:alice@10.1.2.3:5060")
    add.add_argument("--languages", help="locales the agent takes, e.g. en-US,zh-CN (default any)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_add)
    ls = agsub.add_parser("list", help="accounts and their state")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    dis = agsub.add_parser("disable", help="disable an account (ends its sessions and tokens)")
    dis.add_argument("name")
    dis.set_defaults(func=cmd_disable)
    tok = agsub.add_parser("token", help="print a new API token (shown once; stored hashed)")
    tok.add_argument("name")
    tok.add_argument("--revoke", action="store_true", help="revoke all of this account's tokens")
    tok.set_defaults(func=cmd_token)
    for p in (add, ls, dis, tok):
        p.add_argument("--db", help=DB_HELP)
