"""Entry, the main menu, "anything else", goodbye and transfer (CALLFLOWS.md)."""

from __future__ import annotations

from typing import Final

from ivr.dialog import patient
from ivr.dialog.engine import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec

# The first state of each intent's flow.
INTENT_STARTS: Final = {
    "account_recovery": "recovery_start",
    "live_streaming": "live_streaming_answer",
    "content_review": "content_type",
    "ticket_status": "ticket_number",
    "feedback": "feedback_recording",
}

SPEC: Final = FlowSpec(
    name="entry",
    states=("welcome", "main_menu", "anything_else", "goodbye", "transfer", "end"),
    transitions=(
        ("next", "welcome", "main_menu"),
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
        return "next"

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
