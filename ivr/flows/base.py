"""What every flow shares: the call context, and the declaration format of a flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.agents.queue import AgentQueue
from ivr.dialog.engine import Dialog
from ivr.services.accounts import Accounts
from ivr.services.callers import CallerMemory, PickUp, TicketNews
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
    memory: CallerMemory | None = None  # callers remembered across calls


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
    feedback: Any = None  # the recording waiting for the caller's confirmation
    collected: dict[str, Any] = field(default_factory=dict)
    news: tuple[TicketNews, ...] = ()  # tickets that changed since the caller's last call
    pick_up: PickUp | None = None  # the task the caller hung up in, less than 30 minutes ago
    steps_texted: set[str] = field(default_factory=set)  # walkthroughs sent by text message

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


class FlowHandlers:
    """Base of the per-flow handler mixins: ``do_<state>`` returns the next trigger."""

    dialog: Dialog
    ctx: CallContext
    services: Services
    recorder: CallRecorder

    def remember_account(self, phone: str) -> None:
        """The account this call identified, as a keyed hash (a later call may pick up)."""
        if self.services.memory is not None:
            self.recorder.set(account_key=self.services.memory.key(phone))
