"""Shared helpers of the `ivr` command modules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ivr.config import Settings, check_locales, load_settings

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
    from ivr.services.store import Store

    return Store(Path(args.db) if getattr(args, "db", None) else settings.db_path)


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
