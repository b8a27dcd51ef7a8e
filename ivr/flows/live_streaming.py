"""Live-streaming permission (CALLFLOWS.md): the conditions, then an optional walkthrough."""

from __future__ import annotations

from typing import Final

from ivr.dialog.prompts import SpokenText
from ivr.dialog.turns import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec
from ivr.flows.walkthrough import run_walkthrough

SPEC: Final = FlowSpec(
    name="live_streaming",
    states=(
        "live_streaming_answer",
        "offer_walkthrough",
        "apply_live_streaming",
        "walkthrough_worked",
    ),
    transitions=(
        ("next", "live_streaming_answer", "offer_walkthrough"),
        ("yes", "offer_walkthrough", "apply_live_streaming"),
        ("no", "offer_walkthrough", "anything_else"),
        ("next", "apply_live_streaming", "walkthrough_worked"),
        ("yes", "walkthrough_worked", "anything_else"),
        ("no", "walkthrough_worked", "transfer"),
    ),
)


class LiveStreamingHandlers(FlowHandlers):
    def do_live_streaming_answer(self) -> str:
        article = self.services.knowledge.get("live_streaming")
        self.dialog.say("live_streaming_answer", answer=SpokenText(article.spoken()))
        return "next"

    def do_offer_walkthrough(self) -> str:
        return self.dialog.ask("offer_walkthrough", grammar="yes_no", kind=AskKind.YES_NO).value

    def do_apply_live_streaming(self) -> str:
        article = self.services.knowledge.get("apply_live_streaming")
        run_walkthrough(self.dialog, article, text_steps=self.steps_texter(article))
        return "next"

    def do_walkthrough_worked(self) -> str:
        answer = self.dialog.ask("walkthrough_worked", grammar="yes_no", kind=AskKind.YES_NO)
        if answer.value == "no":
            self.ctx.transfer_reason = "task_failed"
        return answer.value
