"""Ticket status (CALLFLOWS.md): the 8-digit number, read back, then the status and result."""

from __future__ import annotations

from typing import Final

from ivr.dialog.prompts import SpokenText
from ivr.dialog.turns import AskKind
from ivr.flows.base import FlowHandlers, FlowSpec
from ivr.services.tickets import Status

SPEC: Final = FlowSpec(
    name="ticket_status",
    states=(
        "ticket_number",
        "confirm_ticket_number",
        "ticket_lookup",
        "try_another_ticket",
        "ticket_report",
    ),
    transitions=(
        ("next", "ticket_number", "confirm_ticket_number"),
        ("yes", "confirm_ticket_number", "ticket_lookup"),
        ("no", "confirm_ticket_number", "ticket_number"),
        ("corrected", "confirm_ticket_number", "confirm_ticket_number"),
        ("found", "ticket_lookup", "ticket_report"),
        ("not_found", "ticket_lookup", "try_another_ticket"),
        ("yes", "try_another_ticket", "ticket_number"),
        ("no", "try_another_ticket", "anything_else"),
        ("next", "ticket_report", "anything_else"),
    ),
)


class TicketStatusHandlers(FlowHandlers):
    def do_ticket_number(self) -> str:
        answer = self.dialog.ask("ticket_number", grammar="ticket_number", kind=AskKind.DIGITS)
        self.ctx.collected["ticket"] = answer.digits
        return "next"

    def do_confirm_ticket_number(self) -> str:
        number = self.ctx.collected["ticket"]
        answer, self.ctx.collected["ticket"] = self.read_back(
            "confirm_ticket_number",
            number,
            grammar="ticket_number",
            number=self.dialog.digits(number, "pairs"),
        )
        return answer

    def do_ticket_lookup(self) -> str:
        number = self.ctx.collected["ticket"]
        if self.services.tickets.get(number) is None:
            self.dialog.say("ticket_not_found", number=self.dialog.digits(number, "pairs"))
            return "not_found"
        return "found"

    def do_try_another_ticket(self) -> str:
        return self.dialog.ask("try_another_ticket", grammar="yes_no", kind=AskKind.YES_NO).value

    def do_ticket_report(self) -> str:
        ticket = self.services.tickets.get(self.ctx.collected["ticket"])
        assert ticket is not None
        self.ctx.collected["ticket_status"] = str(ticket.status)
        prompts = self.dialog.prompts
        team = (
            prompts.text(f"team.{ticket.team}")
            if prompts.has(f"team.{ticket.team}")
            else ticket.team
        )
        params: dict[str, object] = {
            "number": self.dialog.digits(ticket.number, "pairs"),
            "team": team,
        }
        if ticket.status is Status.RESOLVED:
            params["resolution"] = SpokenText(ticket.resolution or "")
        self.dialog.say(f"ticket_status.{ticket.status}", **params)
        return "next"
