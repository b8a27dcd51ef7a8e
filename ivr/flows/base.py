"""What every flow shares: the call context, and the declaration format of a flow."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from ivr.agents.queue import AgentQueue
from ivr.dialog.corrections import CORRECTION
from ivr.dialog.engine import Dialog
from ivr.dialog.turns import AskKind, Sensitive
from ivr.services.accounts import Accounts
from ivr.services.callers import CallerMemory, PickUp, TicketNews
from ivr.services.calls import CallRecorder
from ivr.services.codes import Codes
from ivr.services.feedback import FeedbackBox, FeedbackClassifier
from ivr.services.knowledge import Article, KnowledgeBase
from ivr.services.recovery_guard import RecoveryGuard
from ivr.services.sms import split_sms
from ivr.services.tickets import Messages, Tickets

MIN_PHONE_DIGITS: Final = 7


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
    corrections: int = 0  # corrections in a row at the read-back of one number
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

    def remember_account(self, phone: str) -> None:
        """The account this call identified, as a keyed hash (a later call may pick up)."""
        if self.services.memory is not None:
            self.recorder.set(account_key=self.services.memory.key(phone))

    def steps_number(self) -> str | None:
        """Where a walkthrough's steps go by text: the verified account's phone, else the
        caller ID (when it is a phone number)."""
        if self.ctx.verified and self.ctx.account_phone:
            return self.ctx.account_phone
        caller = self.ctx.caller_id or ""
        return caller if len(re.sub(r"\D", "", caller)) >= MIN_PHONE_DIGITS else None

    def steps_texter(self, article: Article) -> Callable[[], None] | None:
        """What sends ``article``'s steps by text message at the caller's "text me" (None when
        the call has no number to send them to)."""
        if self.steps_number() is None:
            return None
        return lambda: self.text_steps(article)

    def text_steps(self, article: Article) -> None:
        """Send the steps (once per walkthrough, in SMS parts) and say where they went."""
        number = self.steps_number()
        if number is None:
            self.dialog.say("steps_not_sent")
            return
        last4 = self.dialog.digits(number[-4:])
        if article.id in self.ctx.steps_texted:
            self.dialog.say("steps_already_sent", last4=last4)
            return
        prompts = self.dialog.prompts
        header = prompts.text("sms_steps").format(
            brand=self.dialog.settings.brand_for(prompts.locale), title=article.title
        )
        units = [header, *(f"{i}. {step}" for i, step in enumerate(article.steps, 1))]
        outbox = self.services.codes.outbox
        with outbox.store.transaction():  # all the parts, or none
            for part in split_sms(units):
                outbox.send(number, part, kind="steps")
        self.ctx.steps_texted.add(article.id)
        self.ctx.collected["steps_texted"] = sorted(self.ctx.steps_texted)
        self.dialog.say("steps_sent", last4=last4)
