"""Shared helpers of the `ivr` command modules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ivr.config import Settings, check_locales, load_settings

DB_HELP = (
    "the store: a SQLite file or postgresql://user@host/dbname (default: SQLite in the data"
    " directory)"
)
DEMO_CALLS = {
    "en-US": Path(__file__).parent.parent / "data" / "demo_call.yaml",
    "zh-CN": Path(__file__).parent.parent / "data" / "demo_call.zh-CN.yaml",
}


def settings_for(args: argparse.Namespace) -> Settings:
    home = Path(args.home) if getattr(args, "home", None) else None
    settings = load_settings(Path(args.config) if args.config else None, home=home)
    if getattr(args, "locale", None):
        settings = settings.with_(locale=args.locale)
        check_locales(settings)
    return settings


def store_for(args: argparse.Namespace, settings: Settings) -> Any:
    """The store ``--db`` names (a SQLite file or a postgresql:// address), else the data
    directory's SQLite file."""
    from ivr.services.store import open_store

    return open_store(getattr(args, "db", None) or settings.db_path, home=settings.home)


def show_live(kind: str, data: dict[str, Any]) -> None:
    """Print the transcript as a call goes: what the IVR said, what was heard, value, confidence."""
    if kind == "line" and data["speaker"] == "ivr":
        print(f"  IVR    : {data['text']}", flush=True)
    elif kind == "turn":
        conf = "" if data["confidence"] is None else f", confidence {data['confidence']:.2f}"
        print(
            f"  CALLER : [{data['mode']}] heard {data['heard']!r} -> {data['value']}{conf}"
            f"  (ask {data['ask']})",
            flush=True,
        )
