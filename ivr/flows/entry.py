"""Entry, the main menu, "anything else", goodbye and transfer (CALLFLOWS.md)."""

from __future__ import annotations

from typing import Final

from ivr.dialog import patient
from ivr.dialog.engine import TransferRequested
from ivr.dialog.prompts import SpokenText
from ivr.dialog.turns import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec

# The first state of each intent's flow.
INTENT_STARTS: Final = {
    "account_recovery": "recovery_start",
    "live_streaming": "live_streaming_answer",
    "content_review": "content_type",
    "ticket_status": "ticket_number",
    "feedback": "feedback_recording",
}

# the asks a remembered caller hears before the menu: after two failed tries, the menu
OPTIONAL_ASK_TRIES: Final = 2

SPEC: Final = FlowSpec(
    name="entry",
    states=(
        "welcome",
        "caller_news",
        "pick_up",
        "main_menu",
        "anything_else",
        "goodbye",
        "transfer",
        "end",
    ),
    transitions=(
        ("next", "welcome", "main_menu"),
        # a remembered caller: news of their tickets, then the task they hung up in
        ("news", "welcome", "caller_news"),
        ("pick_up", "welcome", "pick_up"),
        ("again", "caller_news", "caller_news"),
        ("next", "caller_news", "main_menu"),
        ("pick_up", "caller_news", "pick_up"),
        ("no", "pick_up", "main_menu"),
        ("resume_code", "pick_up", "verification_code"),
        *((intent, "pick_up", start) for intent, start in INTENT_STARTS.items()),
        *((intent, "main_menu", start) for intent, start in INTENT_STARTS.items()),
        ("yes", "anything_else", "main_menu"),
        ("no", "anything_else", "goodbye"),
        ("next", "goodbye", "end"),
        ("next", "transfer", "end"),
    ),
)


class EntryHandlers(FlowHandlers):
    def do_welcome(self) -> str:
        self.dialog.say("welcome")
        if self.dialog.state.patient.remembered:
            self.dialog.say(patient.ANNOUNCE_REMEMBERED)
        if self.services.memory is not None:
            recall = self.services.memory.recall(
                self.ctx.caller_id, call_id=self.recorder.call_id, tasks=frozenset(INTENT_STARTS)
            )
            self.ctx.news, self.ctx.pick_up = recall.news, recall.pick_up
        if self.ctx.news:
            return "news"
        return "pick_up" if self.ctx.pick_up else "next"

    def do_caller_news(self) -> str:
        """What changed in the caller's tickets since their last call, before the menu."""
        prompts = self.dialog.prompts
        for news in self.ctx.news:
            kind = f"ticket_kind.{news.team}"
            self.dialog.say(
                f"caller_news.{news.status}",
                kind=prompts.text(kind) if prompts.has(kind) else prompts.text("ticket_kind"),
                last4=self.dialog.digits(news.number[-4:]),
                **({"resolution": SpokenText(news.resolution or "")} if news.resolution else {}),
            )
        try:
            answer = self.dialog.ask(
                "hear_again", grammar="hear_again", kind=AskKind.YES_NO, tries=OPTIONAL_ASK_TRIES
            )
        except TransferRequested as req:
            if req.reason == "caller_request":
                raise
            answer = None  # nothing understood: on to the menu, as if the caller went on
        if answer is not None and answer.value == "again":
            return "again"
        return "pick_up" if self.ctx.pick_up else "next"

    def do_pick_up(self) -> str:
        """Offer the task the caller hung up in: recovery with a live code goes to the code."""
        pick_up = self.ctx.pick_up
        assert pick_up is not None
        self.ctx.pick_up = None
        phone = pick_up.account_phone
        params = (
            {"prompt": "pick_up_code", "last4": self.dialog.digits(phone[-4:])}
            if phone is not None
            else {"task": self.dialog.prompts.text(f"task.{pick_up.intent}")}
        )
        try:
            answer = self.dialog.ask(
                "pick_up", grammar="yes_no", kind=AskKind.YES_NO, tries=OPTIONAL_ASK_TRIES, **params
            )
        except TransferRequested as req:
            if req.reason == "caller_request":
                raise
            return "no"  # nothing understood: the main menu, as for any caller
        if answer.value == "no":
            return "no"
        self.ctx.new_task()
        self.ctx.intent = pick_up.intent
        self.recorder.set(intent=pick_up.intent)
        if phone is not None:
            self.ctx.account_phone = phone
            self.remember_account(phone)
            return "resume_code"
        return pick_up.intent

    def do_main_menu(self) -> str:
        self.ctx.new_task()
        answer = self.dialog.ask("main_menu", grammar="main_menu", kind=AskKind.MENU)
        self.ctx.intent = answer.value
        self.recorder.set(intent=answer.value)
        return answer.value

    def do_anything_else(self) -> str:
        return self.dialog.ask("anything_else", grammar="yes_no", kind=AskKind.YES_NO).value

    def do_goodbye(self) -> str:
        self.dialog.say("goodbye")
        return "next"
