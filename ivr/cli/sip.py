"""`ivr sip` commands: the HA1 hashes of a SIP user for ``[sip.users]`` in ``ivr.toml``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ivr.cli.common import settings_for


def cmd_sip_hash(args: argparse.Namespace) -> int:
    from ivr.channels.sip_guard import CONFIG_KEYS, Algorithm, ha1

    realm = args.realm or settings_for(args).sip.realm
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("ivr: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print(
            f"ivr: expected a password of at least 8 characters, got {len(password)}",
            file=sys.stderr,
        )
        return 2
    print(f"[sip.users.{args.user}]  # realm {realm!r}")
    for algorithm in (Algorithm.SHA256, Algorithm.MD5):
        print(f'{CONFIG_KEYS[algorithm]} = "{ha1(args.user, realm, password, algorithm)}"')
    return 0


def register(sub: Any) -> None:
    sip = sub.add_parser("sip", help="SIP users who may call from outside --allow").add_subparsers(
        dest="sip", required=True
    )
    h = sip.add_parser(
        "hash", help="print a user's HA1 hashes for ivr.toml (the password is read from stdin)"
    )
    h.add_argument("user")
    h.add_argument("--realm", help="digest realm (default: [sip] realm of the configuration)")
    h.set_defaults(func=cmd_sip_hash)
