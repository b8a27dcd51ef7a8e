"""`ivr` commands: call records and the back office: calls, tickets, feedback, the
recovery audit log."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ivr.cli.common import DB_HELP, settings_for, store_for
from ivr.config import Settings
from ivr.services.privacy import mask_phone


def cmd_calls_list(args: argparse.Namespace) -> int:
    from ivr.services.calls import list_calls

    settings = settings_for(args)
    calls = list_calls(store_for(args, settings), limit=args.limit)
    if args.json:
        print(json.dumps([c.as_dict() for c in calls], indent=2, ensure_ascii=False))
        return 0
    import datetime as dt

    for c in calls:
        when = dt.datetime.fromtimestamp(c.started_at).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{c.id}  {when}  {c.channel:9s} {c.caller_masked or '-':15s} "
            f"{c.outcome or 'in progress':12s} {c.transfer_reason or ''}"
        )
    if not calls:
        print("no calls recorded yet")
    return 0


def cmd_calls_show(args: argparse.Namespace) -> int:
    from ivr.services.calls import load_call

    settings = settings_for(args)
    record = load_call(store_for(args, settings), args.call_id)
    if record is None:
        print(f"no call {args.call_id!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"call {record.id}: {record.outcome} {record.transfer_reason or ''}")
    print(f"caller {record.caller_masked}  channel {record.channel}  locale {record.locale}")
    if record.patient:
        print("patient mode: yes")
    print("path: " + " -> ".join(record.states))
    for line in record.transcript:
        print(f"  {line['speaker']:6s}: {line['text']}")
    return 0


def _runtime_services(args: argparse.Namespace) -> tuple[Settings, Any, Any]:
    from ivr.services.codes import SmsOutbox
    from ivr.services.tickets import Tickets

    settings = settings_for(args)
    store = store_for(args, settings)
    return settings, store, Tickets(store, SmsOutbox(store))


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in details.items())


def cmd_tickets_list(args: argparse.Namespace) -> int:
    _, _, tickets = _runtime_services(args)
    found = tickets.list(team=args.team, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([t.as_dict() for t in found], indent=2, ensure_ascii=False))
        return 0
    for t in found:
        print(
            f"{t.number}  {_when(t.created_at)}  {t.team:15s} {t.status:12s} "
            f"{mask_phone(t.caller) or '-':15s} {_details(t.details)}"
        )
    if not found:
        print("no tickets")
    return 0


def cmd_tickets_show(args: argparse.Namespace) -> int:
    _, _, tickets = _runtime_services(args)
    ticket = tickets.get(args.number)
    if ticket is None:
        print(f"ivr: no ticket {args.number}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(ticket.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"ticket {ticket.number}: {ticket.status}  team {ticket.team}  locale {ticket.locale}")
    print(f"caller {mask_phone(ticket.caller) or '-'}  call {ticket.call_id or '-'}")
    print(f"details: {_details(ticket.details)}")
    if ticket.resolution:
        print(f"resolution: {ticket.resolution}")
    for change in ticket.history:
        print(f"  {_when(change.at)}  {change.status:12s} {change.note}")
    return 0


def cmd_tickets_update(args: argparse.Namespace) -> int:
    from ivr.dialog.prompts import PromptBook
    from ivr.session import ticket_messages

    settings, _, tickets = _runtime_services(args)
    ticket = tickets.get(args.number)
    if ticket is None:
        print(f"ivr: no ticket {args.number}", file=sys.stderr)
        return 1
    # the text message goes out in the language of the call that opened the ticket
    messages = ticket_messages(
        PromptBook(settings.prompts_dir, ticket.locale), settings.brand_for(ticket.locale)
    )
    updated = tickets.update(
        args.number,
        status=args.status,
        resolution=args.resolution,
        note=args.note,
        messages=messages,
    )
    print(f"ticket {updated.number}: {updated.status}")
    if args.resolution and updated.resolution:
        from ivr.dialog.prompt_cache import prerender_text
        from ivr.speech.tts import Synthesizer

        # spoken when the caller asks: synthesised now, so the answer plays from the cache
        synth = Synthesizer(settings.cache_dir / "prompts")
        count = prerender_text(settings, synth, updated.locale, updated.resolution)
        print(f"resolution rendered for callers ({count} segments)")
    if updated.status == "resolved" and ticket.status != "resolved" and updated.caller:
        print(f"text message with the result queued to {mask_phone(updated.caller)}")
    return 0


def cmd_feedback_list(args: argparse.Namespace) -> int:
    from ivr.services.feedback import FeedbackBox

    settings = settings_for(args)
    store = store_for(args, settings)
    items = FeedbackBox(store, store.path.parent / "feedback").list(
        category=args.category, limit=args.limit
    )
    if args.json:
        print(json.dumps([i.as_dict() for i in items], indent=2, ensure_ascii=False))
        return 0
    for i in items:
        print(
            f"#{i.id:<5d} {_when(i.created_at)}  {i.category:16s} -> {i.queue:11s} "
            f"{i.seconds:5.1f} s  {i.caller or '-':15s} {i.transcript!r}"
        )
        if i.audio_path:
            print(f"        audio: {i.audio_path}")
    if not items:
        print("no feedback")
    return 0


def cmd_recovery_audit(args: argparse.Namespace) -> int:
    import time

    from ivr.services.recovery_guard import RecoveryAudit

    settings = settings_for(args)
    since = time.time() - args.hours * 3600 if args.hours is not None else None
    rows = RecoveryAudit(store_for(args, settings)).rows(
        call_id=args.call, account_last4=args.account, since=since, limit=args.limit
    )
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return 0
    import datetime as dt

    for r in rows:
        when = dt.datetime.fromtimestamp(r.at).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{when}  {r.call_id or '-':16s} {r.server or '-':15s} {r.caller or '-':15s} "
            f"{r.account or '-':15s} {r.step:15s} {r.result}"
            + (f"  ({r.detail})" if r.detail else "")
        )
    if not rows:
        print("no recovery steps recorded")
    return 0


def register(sub: Any) -> None:
    c = sub.add_parser("calls", help="call records").add_subparsers(dest="calls", required=True)
    cl = c.add_parser("list", help="recent calls")
    cl.add_argument("--db", help=DB_HELP)
    cl.add_argument("--limit", type=int, default=50)
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_calls_list)
    cs = c.add_parser("show", help="one call: path, turns, transcript")
    cs.add_argument("call_id")
    cs.add_argument("--db", help=DB_HELP)
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=cmd_calls_show)

    tk = sub.add_parser("tickets", help="review tickets (back office)").add_subparsers(
        dest="tickets", required=True
    )
    tl = tk.add_parser("list", help="tickets, newest first")
    tl.add_argument("--team", help="only this team, e.g. content_review")
    tl.add_argument("--status", choices=("open", "in_progress", "resolved"))
    tl.add_argument("--limit", type=int, default=100)
    tl.add_argument("--db", help=DB_HELP)
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=cmd_tickets_list)
    ts = tk.add_parser("show", help="one ticket with its history")
    ts.add_argument("number")
    ts.add_argument("--db", help=DB_HELP)
    ts.add_argument("--json", action="store_true")
    ts.set_defaults(func=cmd_tickets_show)
    tu = tk.add_parser("update", help="move a ticket on; resolving it texts the caller")
    tu.add_argument("number")
    tu.add_argument("--status", choices=("open", "in_progress", "resolved"))
    tu.add_argument("--resolution", help="the team's answer, read and texted to the caller")
    tu.add_argument("--note", help="a note for the history")
    tu.add_argument("--db", help=DB_HELP)
    tu.set_defaults(func=cmd_tickets_update)

    fb = sub.add_parser("feedback", help="spoken feedback (back office)").add_subparsers(
        dest="feedback", required=True
    )
    fl = fb.add_parser("list", help="feedback, newest first")
    fl.add_argument(
        "--category", choices=("feature_request", "bug", "complaint", "praise", "other")
    )
    fl.add_argument("--limit", type=int, default=100)
    fl.add_argument("--db", help=DB_HELP)
    fl.add_argument("--json", action="store_true")
    fl.set_defaults(func=cmd_feedback_list)

    rc = sub.add_parser("recovery", help="account recovery (security)").add_subparsers(
        dest="recovery", required=True
    )
    ra = rc.add_parser(
        "audit", help="every recovery step, newest first (masked numbers: who, when, result)"
    )
    ra.add_argument("--call", help="one call (its id or the start of it)")
    ra.add_argument("--account", help="one account, by the last digits of its number")
    ra.add_argument("--hours", type=float, help="only the last H hours")
    ra.add_argument("--limit", type=int, default=200)
    ra.add_argument("--db", help=DB_HELP)
    ra.add_argument("--json", action="store_true")
    ra.set_defaults(func=cmd_recovery_audit)
