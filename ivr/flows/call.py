"""The call: every flow's states in one `transitions` machine, driven by the session loop.

Each state has a handler ``do_<state>`` that says and asks what the state needs
and returns the trigger to fire. Transfers, "main menu" and hang-ups may happen
at any ask; they arrive as exceptions and move the machine the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from transitions import Machine, MachineError

from ivr.agents.cases import CallbackWindow, CaseDesk
from ivr.dialog.engine import CallerHungUp, Dialog, MainMenuRequested, TransferRequested
from ivr.dialog.turns import AskKind
from ivr.flows import content_review, entry, feedback, live_streaming, recovery, ticket_status
from ivr.flows.base import CallContext, FlowSpec, Services
from ivr.flows.content_review import ContentReviewHandlers
from ivr.flows.entry import EntryHandlers
from ivr.flows.feedback import FeedbackHandlers
from ivr.flows.live_streaming import LiveStreamingHandlers
from ivr.flows.recovery import RecoveryHandlers
from ivr.flows.ticket_status import TicketStatusHandlers
from ivr.services.calls import CallRecorder, Outcome
from ivr.services.privacy import mask_phone

log = logging.getLogger(__name__)

FLOWS: Final[tuple[FlowSpec, ...]] = (
    entry.SPEC,
    recovery.SPEC,
    live_streaming.SPEC,
    content_review.SPEC,
    ticket_status.SPEC,
    feedback.SPEC,
)
MAX_STATES_PER_CALL: Final = 400
CALLBACK_WINDOW_TRIES: Final = 2  # then the first free agent calls back


def machine_tables(flows: tuple[FlowSpec, ...] = FLOWS) -> tuple[list[str], list[dict[str, Any]]]:
    states: list[str] = []
    transitions: list[dict[str, Any]] = []
    for flow in flows:
        states.extend(s for s in flow.states if s not in states)
        transitions.extend({"trigger": t, "source": s, "dest": d} for t, s, d in flow.transitions)
    # reachable from any ask: a transfer, or the caller's "main menu"
    transitions.append({"trigger": "to_transfer", "source": "*", "dest": "transfer"})
    transitions.append({"trigger": "to_main_menu", "source": "*", "dest": "main_menu"})
    return states, transitions


class CallFlow(
    EntryHandlers,
    RecoveryHandlers,
    LiveStreamingHandlers,
    ContentReviewHandlers,
    TicketStatusHandlers,
    FeedbackHandlers,
):
    """The model the machine drives; one per call."""

    state: str
    trigger: Callable[[str], bool]  # added by the machine (transitions' model API)

    def __init__(
        self, dialog: Dialog, ctx: CallContext, services: Services, recorder: CallRecorder
    ) -> None:
        self.dialog = dialog
        self.ctx = ctx
        self.services = services
        self.recorder = recorder
        states, transitions = machine_tables()
        self.machine = Machine(
            model=self,
            states=states,
            transitions=transitions,
            initial="welcome",
            auto_transitions=False,
            send_event=False,
        )
        self.outcome: Outcome | None = None

    def run(self) -> Outcome:
        """Drive the call to its end; returns the outcome (the record is written as it goes)."""
        steps = 0
        while self.state != "end":
            steps += 1
            if steps > MAX_STATES_PER_CALL:
                raise RuntimeError(f"call exceeded {MAX_STATES_PER_CALL} states; flow loop?")
            self.recorder.state(self.state)
            self.ctx.step = self.state
            if self.state == "transfer":
                self._transfer()
                self.trigger("next")
                continue
            try:
                trigger = getattr(self, f"do_{self.state}")()
            except TransferRequested as req:
                self.ctx.transfer_reason = req.reason
                if req.step:
                    self.ctx.collected["step"] = req.step
                self.trigger("to_transfer")
                continue
            except MainMenuRequested:
                self.trigger("to_main_menu")
                continue
            try:
                self.trigger(trigger)
            except MachineError as exc:
                raise RuntimeError(f"no transition {trigger!r} from state {self.state!r}") from exc
        assert self.outcome is not None or self.ctx.transfer_reason is None
        return self.outcome or Outcome.RESOLVED

    def case(self) -> dict[str, Any]:
        return {
            "call_id": self.recorder.call_id,
            "caller": mask_phone(self.ctx.caller_id),
            "verified": self.ctx.verified,
            "intent": self.ctx.intent,
            "account": mask_phone(self.ctx.account_phone),
            "reason": self.ctx.transfer_reason,
            "patient_mode": self.dialog.state.patient.ever,
            "step": self.ctx.collected.get("step", self.ctx.step),
            "collected": {k: v for k, v in self.ctx.collected.items() if k != "step"},
            "states": list(self.recorder.states),
            "transcript": [
                {"speaker": who, "text": text} for who, text in self.dialog.state.transcript
            ],
        }

    def _transfer(self) -> None:
        reason = self.ctx.transfer_reason or "caller_request"
        self.ctx.transfer_reason = reason
        position = self.services.queue.enqueue(
            self.recorder.call_id, reason, self.case(), caller=self.ctx.caller_id
        )
        self.outcome = Outcome.TRANSFERRED
        self.recorder.finish(Outcome.TRANSFERRED, reason=reason)
        try:
            self.dialog.say("transfer", position=position)
            connected = self.dialog.channel.connect_agent()
            if connected is False:
                # no agent answered: the case stays in the queue and the caller is told so
                log.info(
                    "[%s] no agent answered; the case waits in the queue", self.recorder.call_id
                )
                self.dialog.say("agents_busy")
                self._callback_window()
        except CallerHungUp:
            log.info("[%s] caller hung up during the transfer", self.recorder.call_id)

    def _callback_window(self) -> None:
        """No agent was free: the caller picks when to be called back; the case keeps it."""
        queued = self.services.queue.current()
        if queued is None:
            return
        desk = CaseDesk(self.services.queue.store)
        desk.promise_callback(queued.id)  # promised already, whatever the caller does now
        try:
            answer = self.dialog.ask(
                "callback_window",
                grammar="callback_window",
                kind=AskKind.MENU,
                tries=CALLBACK_WINDOW_TRIES,
            )
            window = CallbackWindow(answer.value)
        except (TransferRequested, MainMenuRequested):
            window = CallbackWindow.ASAP  # nothing chosen (or "agent" again): the first free one
        desk.promise_callback(queued.id, window=window)
        self.ctx.collected["callback_window"] = str(window)
        log.info("[%s] callback window: %s", self.recorder.call_id, window)
        self.dialog.say(f"callback_window_set.{window}")
