"""Restricted video or low views (CALLFLOWS.md): two questions, a review ticket, the rules."""

from __future__ import annotations

from typing import Final

from ivr.dialog.prompts import SpokenText
from ivr.dialog.turns import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec

TEAM: Final = "content_review"

SPEC: Final = FlowSpec(
    name="content_review",
    states=(
        "content_type",
        "published_when",
        "confirm_review_request",
        "create_ticket",
        "review_rules_hint",
    ),
    transitions=(
        ("next", "content_type", "published_when"),
        ("next", "published_when", "confirm_review_request"),
        ("yes", "confirm_review_request", "create_ticket"),
        ("again", "confirm_review_request", "content_type"),
        ("give_up", "confirm_review_request", "transfer"),
        ("next", "create_ticket", "review_rules_hint"),
        ("next", "review_rules_hint", "anything_else"),
    ),
)


class ContentReviewHandlers(FlowHandlers):
    def do_content_type(self) -> str:
        answer = self.dialog.ask("content_type", grammar="content_type", kind=AskKind.MENU)
        self.ctx.collected["content_type"] = answer.value
        return "next"

    def do_published_when(self) -> str:
        answer = self.dialog.ask("published_when", grammar="published_when", kind=AskKind.MENU)
        self.ctx.collected["published"] = answer.value
        return "next"

    def do_confirm_review_request(self) -> str:
        labels = self.dialog.prompts
        answer = self.dialog.ask(
            "confirm_review_request",
            grammar="yes_no",
            kind=AskKind.YES_NO,
            content_type=labels.text(f"content_type.{self.ctx.collected['content_type']}"),
            published=labels.text(f"published.{self.ctx.collected['published']}"),
        )
        if answer.value == "yes":
            return "yes"
        self.ctx.review_refusals += 1
        if self.ctx.review_refusals >= 2:
            self.ctx.transfer_reason = "task_failed"
            return "give_up"
        self.dialog.say("review_start_over")
        return "again"

    def do_create_ticket(self) -> str:
        details = {
            "content_type": self.ctx.collected["content_type"],
            "published": self.ctx.collected["published"],
        }
        ticket = self.services.tickets.create(
            TEAM,
            details,
            caller=self.ctx.caller_id,
            locale=self.dialog.prompts.locale,
            messages=self.services.ticket_messages,
            call_id=self.recorder.call_id,
        )
        self.ctx.collected["ticket"] = ticket.number
        self.recorder.set(ticket_team=TEAM)
        self.ctx.ticket_team = TEAM
        spoken = self.dialog.digits(ticket.number, "pairs")
        self.dialog.say(
            "ticket_created" if self.ctx.caller_id else "ticket_created_no_sms", number=spoken
        )
        return "next"

    def do_review_rules_hint(self) -> str:
        self.dialog.say(
            "review_rules_hint",
            rules=SpokenText(self.services.knowledge.get("review_rules").spoken()),
        )
        return "next"
