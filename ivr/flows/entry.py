"""Entry, the main menu, "anything else", goodbye and transfer (CALLFLOWS.md)."""

from __future__ import annotations

from typing import Final

from ivr.dialog.engine import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec

BUILT_INTENTS: Final = ("account_recovery",)
PLANNED_INTENTS: Final = ("live_streaming", "content_review", "ticket_status", "feedback")

SPEC: Final = FlowSpec(
    name="entry",
    states=("welcome", "main_menu", "not_available", "anything_else", "goodbye", "transfer", "end"),
    transitions=(
        ("next", "welcome", "main_menu"),
        ("account_recovery", "main_menu", "recovery_start"),
        *((intent, "main_menu", "not_available") for intent in PLANNED_INTENTS),
        ("next", "not_available", "transfer"),
        ("yes", "anything_else", "main_menu"),
        ("no", "anything_else", "goodbye"),
        ("next", "goodbye", "end"),
        ("next", "transfer", "end"),
    ),
)


class EntryHandlers(FlowHandlers):
    def do_welcome(self) -> str:
        self.dialog.say("welcome")
        return "next"

    def do_main_menu(self) -> str:
        answer = self.dialog.ask("main_menu", grammar="main_menu", kind=AskKind.MENU)
        self.ctx.intent = answer.value
        self.recorder.set(intent=answer.value)
        return answer.value

    def do_not_available(self) -> str:
        self.ctx.transfer_reason = "not_available"
        return "next"

    def do_anything_else(self) -> str:
        return self.dialog.ask("anything_else", grammar="yes_no", kind=AskKind.YES_NO).value

    def do_goodbye(self) -> str:
        self.dialog.say("goodbye")
        return "next"
