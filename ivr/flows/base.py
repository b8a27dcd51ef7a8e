"""What every flow shares: the call context, and the declaration format of a flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from ivr.agents.queue import AgentQueue
from ivr.dialog.corrections import CORRECTION
from ivr.dialog.engine import AskKind, Dialog, Sensitive
from ivr.services.accounts import Accounts
from ivr.services.calls import CallRecorder
from ivr.services.codes import Codes
from ivr.services.feedback import FeedbackBox, FeedbackClassifier
from ivr.services.knowledge import KnowledgeBase
from ivr.services.tickets import Messages, Tickets


@dataclass
class Services:
    accounts: Accounts
    codes: Codes
    queue: AgentQueue
    knowledge: KnowledgeBase
    tickets: Tickets
    ticket_messages: Messages
    feedback: FeedbackBox
    classifier: FeedbackClassifier


@dataclass
class CallContext:
    """What the call has learned so far; becomes the hand-off case on transfer."""

    caller_id: str | None
    intent: str | None = None
    account_phone: str | None = None
    verified: bool = False
    numbers_tried: int = 0
    candidate_phone: str | None = None
    candidate_code: str | None = None
    step: str | None = None
    transfer_reason: str | None = None
    ticket_team: str | None = None
    review_refusals: int = 0
    corrections: int = 0  # corrections in a row at the read-back of one number
    feedback: Any = None  # the recording waiting for the caller's confirmation
    collected: dict[str, Any] = field(default_factory=dict)

    def new_task(self) -> None:
        """Back at the main menu: per-task counters start again."""
        self.review_refusals = 0
        self.feedback = None


@dataclass(frozen=True)
class FlowSpec:
    """A flow declared as data: its states and its transitions (trigger, source, dest)."""

    name: str
    states: tuple[str, ...]
    transitions: tuple[tuple[str, str, str], ...]


MAX_CORRECTIONS: Final = 3  # corrections of one number at its read-back; then it is asked again


class ReadBack(NamedTuple):
    """A read-back's answer: ``yes``, ``no`` or ``corrected``, and the number it leaves."""

    answer: str
    number: str


class FlowHandlers:
    """Base of the per-flow handler mixins: ``do_<state>`` returns the next trigger."""

    dialog: Dialog
    ctx: CallContext
    services: Services
    recorder: CallRecorder

    def read_back(
        self,
        ask_id: str,
        value: str,
        /,
        *,
        grammar: str,
        sensitive: Sensitive | None = None,
        **params: Any,
    ) -> ReadBack:
        """A read-back yes/no ask of the number ``value`` (collected with ``grammar``).

        Returns ``("yes" | "no", value)``, or ``("corrected", the corrected number)`` when
        the caller corrected it in one breath ("no, it ends in 8 0 0 0") or by keys; the
        flow then reads the corrected number back with the same ask. After
        ``MAX_CORRECTIONS`` in a row a further one counts as "no" (the number is asked again).
        """
        answer = self.dialog.ask(
            ask_id,
            grammar="yes_no",
            kind=AskKind.YES_NO,
            sensitive=sensitive,
            corrects=self.dialog.correctable(value, grammar),
            **params,
        )
        if answer.value != CORRECTION:
            self.ctx.corrections = 0
            return ReadBack(answer.value, value)
        self.ctx.corrections += 1
        if self.ctx.corrections > MAX_CORRECTIONS or answer.digits is None:
            self.ctx.corrections = 0
            return ReadBack("no", value)
        return ReadBack("corrected", answer.digits)
