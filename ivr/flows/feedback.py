"""Feedback (CALLFLOWS.md): free speech after a tone, classified, confirmed, routed."""

from __future__ import annotations

from typing import Final

from ivr.dialog.turns import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec

SPEC: Final = FlowSpec(
    name="feedback",
    states=("feedback_recording", "confirm_feedback", "store_feedback"),
    transitions=(
        ("next", "feedback_recording", "confirm_feedback"),
        ("second_take", "feedback_recording", "store_feedback"),
        ("yes", "confirm_feedback", "store_feedback"),
        ("no", "confirm_feedback", "feedback_recording"),
        ("next", "store_feedback", "anything_else"),
    ),
)


class FeedbackHandlers(FlowHandlers):
    def do_feedback_recording(self) -> str:
        second = self.ctx.feedback is not None  # "no" at the confirmation: record once more
        if second:
            self.dialog.say("feedback_again")
        self.ctx.feedback = self.dialog.record("feedback_recording")
        result = self.services.classifier.classify(self.ctx.feedback.text)
        self.ctx.collected["feedback_category"] = result.category
        self.ctx.collected["feedback_queue"] = result.queue
        return "second_take" if second else "next"

    def do_confirm_feedback(self) -> str:
        category = self.ctx.collected["feedback_category"]
        return self.dialog.ask(
            "confirm_feedback",
            grammar="yes_no",
            kind=AskKind.YES_NO,
            category=self.dialog.prompts.text(f"feedback_category.{category}"),
        ).value

    def do_store_feedback(self) -> str:
        recording = self.ctx.feedback
        assert recording is not None
        classification = self.services.classifier.classify(recording.text)
        item = self.services.feedback.add(
            call_id=self.recorder.call_id,
            locale=self.dialog.prompts.locale,
            caller=self.ctx.caller_id,
            classification=classification,
            transcript=recording.text,
            audio=recording.audio,
        )
        self.ctx.collected["feedback_id"] = item.id
        self.ctx.feedback = None
        queue = self.dialog.prompts.text(f"team.{item.queue}")
        self.dialog.say("feedback_thanks", queue=queue)
        return "next"
