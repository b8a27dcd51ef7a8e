"""A call session: one channel, one dialog, one flow machine, one call record."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ivr.agents.queue import AgentQueue
from ivr.channels.base import Channel
from ivr.config import Settings
from ivr.dialog.corrections import load_forms
from ivr.dialog.engine import CallerHungUp, Dialog, TransferRequested
from ivr.dialog.prompts import PromptBook
from ivr.errors import EngineError
from ivr.flows.base import CallContext, Services
from ivr.flows.call import CallFlow
from ivr.services.accounts import Accounts
from ivr.services.callers import CallerMemory
from ivr.services.calls import CallRecorder, Outcome, TurnRecord
from ivr.services.codes import Codes, SmsOutbox
from ivr.services.feedback import FeedbackBox, FeedbackClassifier
from ivr.services.knowledge import KnowledgeBase
from ivr.services.patients import PatientCallers
from ivr.services.privacy import mask_phone, secret_key
from ivr.services.recovery_guard import RecoveryAttempts, RecoveryAudit, RecoveryGuard
from ivr.services.store import Store
from ivr.services.tickets import Messages, Tickets
from ivr.speech import espeak
from ivr.speech.engines import Engines
from ivr.speech.grammar import GrammarBook
from ivr.speech.tts import Synthesizer
from ivr.speech.voices import natural_voice, voice_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocaleBooks:
    """What a locale's calls read: loaded once, and shown to calls only whole."""

    prompts: PromptBook
    grammars: GrammarBook
    knowledge: KnowledgeBase
    classifier: FeedbackClassifier


@dataclass
class CallResult:
    call_id: str
    outcome: Outcome
    transfer_reason: str | None
    states: list[str]
    turns: list[TurnRecord]
    latencies_ms: list[float] = field(default_factory=list)
    error: str | None = None
    ticket_team: str | None = None
    feedback_category: str | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)
    locale: str = "en-US"


def ticket_messages(prompts: PromptBook, brand: str) -> Messages:
    """The text messages of a ticket's life, from a locale's prompts."""
    return Messages(
        created=prompts.text("sms_ticket_created").format(brand=brand, number="{number}"),
        resolved=prompts.text("sms_ticket_resolved").format(
            brand=brand, number="{number}", resolution="{resolution}"
        ),
    )


class Runtime:
    """What every call in a process shares: settings, store, models, prompts, grammars."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        engines: Engines | None = None,
        synth: Synthesizer | None = None,
        server_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.server_id = server_id  # written on each call record (crash recovery per server)
        self.store = store or Store(settings.db_path)
        self.engines = engines or Engines.from_settings(settings)
        self.synth = synth or Synthesizer(settings.cache_dir / "prompts")
        self.accounts = Accounts(self.store)
        self.outbox = SmsOutbox(self.store)
        self.queue = AgentQueue(self.store)
        self.tickets = Tickets(self.store, self.outbox)
        self.feedback = FeedbackBox(self.store, self.store.path.parent / "feedback")
        secret = secret_key(settings.caller_secret, settings.home)
        self.recovery_attempts = RecoveryAttempts(
            self.store, self.tickets, secret=secret, limits=settings.recovery
        )
        self.recovery_audit = RecoveryAudit(self.store)
        self.memory = CallerMemory(self.store, secret)
        self.patients = PatientCallers(
            self.store, secret, remember_days=settings.patient.remember_days
        )
        self._books: dict[str, LocaleBooks] = {}
        self._books_lock = threading.Lock()
        self.stopping = threading.Event()  # set by a server that shuts down

    def warm_in_background(self, locales: list[str]) -> threading.Thread:
        """Load the locales' recognisers (Whisper into every worker), and start espeak-ng's
        voice process where a locale speaks with it, while calls begin.

        A process's first caller would otherwise wait for the loading on their first answer.
        """

        def warm() -> None:
            began = time.monotonic()
            try:
                self.engines.warm(locales)
                if any(natural_voice(voice_for(self.settings.voice, lo)) is None for lo in locales):
                    espeak.warm()  # read-backs and answers not in the cache are made there
            except (EngineError, RuntimeError, OSError) as exc:  # calls say so when they need it
                if self.stopping.is_set():
                    log.info("speech recognition: loading stopped, the server is stopping")
                else:
                    log.warning("speech recognition not warmed: %s", exc)
                return
            log.info("speech recognition ready in %.1f s", time.monotonic() - began)

        thread = threading.Thread(target=warm, name="warm-engines", daemon=True)
        thread.start()
        return thread

    def books(self, locale: str) -> LocaleBooks:
        # one entry a locale, under a lock: callers who arrived together at a fresh server
        # once saw a locale's books before its feedback classifier, and a call failed at start
        with self._books_lock:
            if locale not in self._books:
                s = self.settings
                load_forms(s.grammars_dir, locale)  # read-back corrections: a bad file fails here
                self._books[locale] = LocaleBooks(
                    prompts=PromptBook(s.prompts_dir, locale),
                    grammars=GrammarBook(s.grammars_dir, locale),
                    knowledge=KnowledgeBase(s.prompts_dir, locale),
                    classifier=FeedbackClassifier(s.prompts_dir, locale),
                )
            return self._books[locale]

    def ticket_messages(self, locale: str) -> Messages:
        """Text-message bodies for tickets, in the ticket's own language."""
        return ticket_messages(self.books(locale).prompts, self.settings.brand_for(locale))

    def locale_for(self, channel: Channel) -> str:
        """The configured locale, unless the dialled number (DNIS) maps to another one."""
        if channel.dialed and channel.dialed in self.settings.dnis:
            return self.settings.dnis[channel.dialed]
        return self.settings.locale

    def voice(self, locale: str) -> str:
        return voice_for(self.settings.voice, locale)

    def run_call(
        self,
        channel: Channel,
        *,
        locale: str | None = None,
        fixed_code: str | None = None,
        observer: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> CallResult:
        locale = locale or self.locale_for(channel)
        books = self.books(locale)
        prompts = books.prompts
        recorder = CallRecorder(
            self.store,
            channel=channel.name,
            locale=locale,
            caller_id=channel.caller_id,
            observer=observer,
            server=self.server_id,
            caller_key=self.memory.key(channel.caller_id),
        )
        try:
            dialog = Dialog(
                channel=channel,
                settings=self.settings,
                prompts=prompts,
                grammars=books.grammars,
                synthesizer=self.synth,
                engine=self.engines.for_locale(locale),
                recorder=recorder,
                voice=self.voice(locale),
            )
            codes = Codes(
                self.store,
                self.accounts,
                self.outbox,
                message=prompts.text("sms_verification_code").format(
                    brand=self.settings.brand_for(locale), code="{code}"
                ),
                fixed_code=fixed_code,
            )
            services = Services(
                self.accounts,
                codes,
                self.queue,
                books.knowledge,
                tickets=self.tickets,
                ticket_messages=self.ticket_messages(locale),
                feedback=self.feedback,
                classifier=books.classifier,
                guard=RecoveryGuard(
                    self.recovery_attempts,
                    self.recovery_audit,
                    call_id=recorder.call_id,
                    server=self.server_id,
                    caller=channel.caller_id,
                    locale=locale,
                ),
                memory=self.memory,
            )
            ctx = CallContext(caller_id=channel.caller_id)
            flow = CallFlow(dialog, ctx, services, recorder)
            self._patient_mode(dialog, recorder, channel.caller_id)
        except Exception as exc:  # the call could not begin: its record is closed all the same
            failure = f"{type(exc).__name__}: {exc}"
            recorder.finish(Outcome.FAILED, reason="system_error", error=failure)
            raise
        log.info(
            "[%s] call started on %s, caller %s, locale %s",
            recorder.call_id,
            channel.name,
            mask_phone(channel.caller_id),
            locale,
        )
        error: str | None = None
        try:
            outcome = flow.run()
            if not recorder.finished:
                recorder.finish(outcome)
            channel.hang_up()
        except CallerHungUp:
            outcome = Outcome.ABANDONED
            recorder.finish(outcome)
        except Exception as exc:  # the per-call boundary: the caller hears an apology
            log.exception("[%s] call failed in state %s", recorder.call_id, flow.state)
            error = f"{type(exc).__name__}: {exc}"
            outcome = Outcome.FAILED
            ctx.transfer_reason = "system_error"
            recorder.set(error=error)
            recorder.finish(outcome, reason="system_error", error=error)
            self._apologise(flow, dialog)
        log.info("[%s] call ended: %s %s", recorder.call_id, outcome, ctx.transfer_reason or "")
        return CallResult(
            call_id=recorder.call_id,
            outcome=outcome,
            transfer_reason=ctx.transfer_reason if outcome is not Outcome.RESOLVED else None,
            states=list(recorder.states),
            turns=list(recorder.turns),
            latencies_ms=list(dialog.latencies_ms),
            error=error,
            ticket_team=ctx.ticket_team,
            feedback_category=ctx.collected.get("feedback_category")
            if "feedback_id" in ctx.collected
            else None,
            transcript=list(dialog.state.transcript),
            locale=locale,
        )

    def _patient_mode(self, dialog: Dialog, recorder: CallRecorder, caller: str | None) -> None:
        """A remembered caller starts patient; switching on or off is remembered at once."""

        def changed(on: bool) -> None:
            if on:
                recorder.set(patient=1)
                self.patients.remember(caller)
            else:
                self.patients.forget(caller)

        dialog.on_patient = changed
        if self.patients.remembers(caller):
            dialog.start_patient()
            changed(True)  # the expiry counts from the last patient call

    def _apologise(self, flow: CallFlow, dialog: Dialog) -> None:
        try:
            self.queue.enqueue(
                flow.recorder.call_id, "system_error", flow.case(), caller=flow.ctx.caller_id
            )
            dialog.say("apology")
        except (CallerHungUp, TransferRequested):
            pass
        except Exception:  # the apology itself failed: nothing more to do for this caller
            log.exception("[%s] could not play the apology", flow.recorder.call_id)
