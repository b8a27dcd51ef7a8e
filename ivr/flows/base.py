"""What every flow shares: the call context, and the declaration format of a flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.agents.queue import AgentQueue
from ivr.dialog.engine import Dialog
from ivr.services.accounts import Accounts
from ivr.services.calls import CallRecorder
from ivr.services.codes import Codes
from ivr.services.feedback import FeedbackBox, FeedbackClassifier
from ivr.services.knowledge import KnowledgeBase
from ivr.services.recovery_guard import RecoveryGuard
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
    guard: RecoveryGuard  # recovery attempts and their audit, for this call


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
