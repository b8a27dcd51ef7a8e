"""The dialog engine: say, ask (speech and keys), escalation and global commands.

It knows prompts and grammars by id, never by text, and measures every timeout
in frames received from the channel. Control leaves an ask in one of three
ways besides an answer: :class:`TransferRequested`, :class:`MainMenuRequested`
or :class:`CallerHungUp`. What a turn means (speech or keys mapped onto the ask's grammar,
a correction applied) and what the call record keeps of it are in ``ivr.dialog.turns``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ivr.channels.base import Channel, ChannelEvent, Frame, HangUp, Key
from ivr.config import Settings, Timeouts
from ivr.dialog import patient
from ivr.dialog.corrections import Target, load_forms
from ivr.dialog.patient import PatientMode
from ivr.dialog.prompts import PromptBook, SpokenDigits
from ivr.dialog.turns import (
    Answer,
    AskKind,
    Heard,
    Mode,
    Recording,
    Sensitive,
    corrected,
    for_the_record,
    is_correction,
    keyed_digits,
    read_back_keys,
    spoken,
)
from ivr.services.calls import CallRecorder, TurnRecord
from ivr.speech.asr.base import Engine, Recognizer
from ivr.speech.audio import FRAME_MS, Audio
from ivr.speech.endpoint import EndpointConfig, Endpointer, Event
from ivr.speech.grammar import (
    COMMAND_PREFIX,
    MAX_DIGITS,
    DigitRule,
    Grammar,
    GrammarBook,
)
from ivr.speech.tts import Speech, Synthesizer

log = logging.getLogger(__name__)

MAX_FAILURES: Final = 3
PARTIAL_EVERY_FRAMES: Final = 5
BARGE_IN_SPEECH_FRAMES: Final = 10  # 200 ms of speech during a prompt stops it
BARGE_IN_KEEP_FRAMES: Final = 30  # frames before the barge-in handed on to the recogniser
LATE_TURN_SEC: Final = 0.2  # a turn taken this long after it ended on the line is logged


class CallerHungUp(Exception):
    """The caller hung up; the call ends as abandoned."""


class TransferRequested(Exception):
    def __init__(self, reason: str, *, step: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step


class MainMenuRequested(Exception):
    """The caller asked for the main menu."""


def tone(rate: int, hz: float = 880.0, ms: int = 300) -> Audio:
    """The short beep before a recording starts (with soft edges, so it does not click)."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (rate * 0.01))
    return Audio((np.sin(2 * np.pi * hz * t) * ramp * 8000).astype(np.int16), rate)


@dataclass
class DialogState:
    slower: int = 0
    transcript: list[tuple[str, str]] = field(default_factory=list)
    patient: PatientMode = field(default_factory=PatientMode)


class Dialog:
    def __init__(
        self,
        *,
        channel: Channel,
        settings: Settings,
        prompts: PromptBook,
        grammars: GrammarBook,
        synthesizer: Synthesizer,
        engine: Engine | None,
        recorder: CallRecorder,
        voice: str,
    ) -> None:
        self.channel = channel
        self.settings = settings
        self.prompts = prompts
        self.grammars = grammars
        self.synth = synthesizer
        self.engine = engine
        self.recorder = recorder
        self.voice = voice
        self.state = DialogState(patient=PatientMode(settings.patient))
        # told when patient mode switches on (True) or off (False): the call remembers it
        self.on_patient: Callable[[bool], None] | None = None
        self._turn_end: float | None = None
        self._arrived = 0.0  # when the last event taken from the channel reached it (0: unknown)
        self._turn_quiet_ms: float | None = None  # the endpointer's wait before the turn ended
        self._pending: list[ChannelEvent] = []
        self._asr_context: dict[str, Any] = {}
        self.latencies_ms: list[float] = []

    # --- speaking --------------------------------------------------------------------------
    def speech(
        self, pid: str, params: dict[str, Any], variant: str = "text", extra: int = 0
    ) -> Speech:
        return self.prompts.speech(
            pid,
            variant=variant,
            params=self.state.patient.params(
                {"brand": self.settings.brand_for(self.prompts.locale), **params}
            ),
            voice=self.settings.voice,
            slower=self.state.patient.speed(self.state.slower) + extra,
        )

    def ask_speech(
        self, pid: str, params: dict[str, Any], variant: str, extra: int, *, digit_entry: bool
    ) -> Speech:
        """An ask's prompt; in patient mode it ends by saying how to reach a person."""
        speech = self.speech(pid, params, variant, extra)
        tail = self.state.patient.tail(digit_entry=digit_entry)
        if tail is None:
            return speech
        v = self.settings.voice
        pause_ms = v.sentence_pause_ms + self.state.patient.speed(0) * v.slower_extra_pause_ms
        return patient.ending_with(speech, self.speech(tail, {}), pause_ms)

    def say(self, pid: str, **params: Any) -> None:
        """Speak a prompt; keys pressed meanwhile stop it and are kept for the next ask."""
        self._play(self.speech(pid, params), barge_in_speech=False)

    def _play(self, speech: Speech, *, barge_in_speech: bool) -> None:
        pieces = self.synth.stream(speech, voice=self.voice, sample_rate=self.channel.sample_rate)
        try:
            first = next(pieces, None)
            self.recorder.line("ivr", speech.transcript)
            self.state.transcript.append(("ivr", speech.transcript))
            log.debug("[%s] ivr: %s", self.recorder.call_id, speech.transcript)
            audio: Audio | None = first
            while audio is not None:
                if not self._play_audio(audio, barge_in_speech=barge_in_speech):
                    return
                audio = next(pieces, None)
        finally:
            pieces.close()

    def _play_audio(self, audio: Audio, *, barge_in_speech: bool) -> bool:
        """Play until the end (True) or until a key or the caller's speech stops it (False)."""
        if self._turn_end is not None:
            latency = (time.perf_counter() - self._turn_end) * 1000
            quiet, self._turn_end, self._turn_quiet_ms = self._turn_quiet_ms, None, None
            self.latencies_ms.append(latency)
            self.recorder.turn_latency(latency, None if quiet is None else quiet + latency)
        if any(isinstance(e, Key) for e in self._pending):
            return False  # the caller already keyed ahead: no need to hear this prompt out
        self.channel.play(audio)
        speech_run = 0
        recent: collections.deque[Frame] = collections.deque(maxlen=BARGE_IN_KEEP_FRAMES)
        vad = Endpointer(self.channel.sample_rate, EndpointConfig())
        while self.channel.is_playing():
            event = self.channel.receive()
            if isinstance(event, HangUp):
                raise CallerHungUp
            if isinstance(event, Key):
                self.channel.stop_playback()
                self._pending.append(event)
                return False
            if barge_in_speech:
                recent.append(event)
                speech_run = speech_run + 1 if vad.is_speech(event.samples) else 0
                if speech_run >= BARGE_IN_SPEECH_FRAMES:
                    self.channel.stop_playback()
                    self._pending.extend(recent)  # the start of the answer goes to the recogniser
                    log.debug("[%s] speech barge-in", self.recorder.call_id)
                    return False
        return True

    # --- asking ----------------------------------------------------------------------------
    def ask(
        self,
        ask_id: str,
        *,
        grammar: str,
        kind: AskKind = AskKind.MENU,
        prompt: str | None = None,
        digits: DigitRule | None = None,
        sensitive: Sensitive | None = None,
        barge_in: bool = True,
        tries: int = MAX_FAILURES,
        corrects: Target | None = None,
        **params: Any,
    ) -> Answer:
        """One ask with escalation (CALLFLOWS.md: rules at every ask); ``tries`` failures
        raise TransferRequested (fewer for an ask whose silence has a default).

        A code's ask (``sensitive=Sensitive.CODE``: the code asked for, or read back) is
        private from its prompt to its answer: the channel keeps none of the caller's audio.

        With ``corrects`` (a read-back of that number), the caller may also correct the
        number in one breath or by keys (``ivr.dialog.corrections``): the answer's value is
        then ``CORRECTION`` and its digits the corrected number; a correction that does not
        fit the number is no match.
        """
        private = sensitive is Sensitive.CODE
        if private:
            self.channel.private(True)
        try:
            return self._ask(
                ask_id, grammar, kind, prompt, digits, sensitive, barge_in, tries, corrects, params
            )
        finally:
            if private:
                self.channel.private(False)

    def _ask(
        self,
        ask_id: str,
        grammar: str,
        kind: AskKind,
        prompt: str | None,
        digits: DigitRule | None,
        sensitive: Sensitive | None,
        barge_in: bool,
        tries: int,
        corrects: Target | None,
        params: dict[str, Any],
    ) -> Answer:
        forms = load_forms(self.settings.grammars_dir, self.grammars.locale) if corrects else None
        if forms is not None and corrects is not None:
            forms = dataclasses.replace(forms, rule=corrects.rule)
        g = self.grammars.get(grammar, digits=digits, extension=forms)
        pid = prompt or ask_id
        failures = 0
        variant = "text"
        while True:
            extra = 1 if failures >= 2 else 0  # the 2nd reprompt is slower
            self.channel.asking(ask_id)
            speech = self.ask_speech(pid, params, variant, extra, digit_entry=g.digits is not None)
            self._play(speech, barge_in_speech=barge_in)
            heard = self._listen(ask_id, g, kind, corrects)
            if corrects is not None:
                heard = corrected(heard, corrects)
            self._record(ask_id, heard, sensitive, g)
            if heard.mode is Mode.NO_INPUT or heard.value is None:
                failures += 1
                reason = "no_input" if heard.mode is Mode.NO_INPUT else "no_match"
                if failures >= tries:
                    raise TransferRequested(reason, step=ask_id)
                self._patient_failure()
                variant = f"{'noinput' if reason == 'no_input' else 'nomatch'}.{failures}"
                continue
            if heard.value.startswith(COMMAND_PREFIX):
                command = heard.value[len(COMMAND_PREFIX) :]
                if command == "agent":
                    raise TransferRequested("caller_request", step=ask_id)
                if command == "main_menu":
                    raise MainMenuRequested
                if command == "slower":
                    self.state.slower += 1
                    self._patient_switch(self.state.patient.on_slower(), ack="slower_ack")
                if command == "normal_speed":
                    self.normal_speed()
                variant = "text"  # repeat / slower / normal speed: the same prompt again
                continue
            self.state.patient.on_answer()
            return Answer(
                ask_id, heard.value, heard.mode, heard.heard, heard.confidence, heard.digits
            )

    def record(self, ask_id: str, *, prompt: str | None = None, **params: Any) -> Recording:
        """Free speech after a tone (feedback): until a long silence, ``#`` or the time limit.

        The words are transcribed as they arrive (free-form, no grammar) and the audio is
        kept. Before the caller starts talking, ``0`` and ``*`` are the usual commands; once
        talking, only ``#`` counts. No input escalates like any ask.
        """
        t = self.settings.timeouts
        pid = prompt or ask_id
        failures = 0
        variant = "text"
        while True:
            extra = 1 if failures >= 2 else 0
            self.channel.asking(ask_id)
            speech = self.ask_speech(pid, params, variant, extra, digit_entry=False)
            self._play(speech, barge_in_speech=False)
            self._pending = [e for e in self._pending if not isinstance(e, Frame)]
            self._play_audio(tone(self.channel.sample_rate), barge_in_speech=False)
            recording = self._take_recording(ask_id, t)
            if recording is not None:
                mode = (
                    Mode.DTMF if recording.ended_by == "key" and not recording.text else Mode.SPEECH
                )
                self.recorder.turn(
                    TurnRecord(ask_id, str(mode), recording.text, None, recording.confidence)
                )
                shown = recording.text or "(recorded, not transcribed)"
                self.recorder.line("caller", shown)
                self.state.transcript.append(("caller", shown))
                self.state.patient.on_answer()
                return recording
            self._record(ask_id, Heard(Mode.NO_INPUT), None)
            failures += 1
            if failures >= MAX_FAILURES:
                raise TransferRequested("no_input", step=ask_id)
            self._patient_failure()
            variant = f"noinput.{failures}"

    # --- patient mode (ivr.dialog.patient) -------------------------------------------------
    def _patient_failure(self) -> None:
        self._patient_switch(self.state.patient.on_failure())

    def _patient_switch(self, switched_on: bool, *, ack: str | None = None) -> None:
        """Say once that the call is now patient (else the command's own acknowledgement)."""
        if switched_on:
            log.info("[%s] patient mode on", self.recorder.call_id)
            self.state.slower = 0  # patient mode's speed takes the place of the caller's own
            if self.on_patient is not None:
                self.on_patient(True)
            self.say(patient.ANNOUNCE)
        elif ack is not None:
            self.say(ack)

    def start_patient(self) -> None:
        """The caller's number is remembered as patient: the call starts so."""
        self.state.patient.start_remembered()
        log.info("[%s] patient mode on (remembered caller)", self.recorder.call_id)

    def normal_speed(self) -> None:
        """The caller's "normal speed": the default speed, and patient mode off."""
        self.state.slower = 0
        if self.state.patient.leave():
            log.info("[%s] patient mode off", self.recorder.call_id)
            if self.on_patient is not None:
                self.on_patient(False)
        self.say(patient.LEFT)

    def _take_recording(self, ask_id: str, t: Timeouts) -> Recording | None:
        cfg = EndpointConfig(
            no_input_ms=self.state.patient.no_input_ms(t.no_input_ms),
            end_silence_ms=t.end_silence_recording_ms,
            end_silence_complete_ms=t.end_silence_recording_ms,
            max_speech_ms=t.max_recording_ms,
        )
        endpointer = Endpointer(self.channel.sample_rate, cfg)
        self.channel.listening(ask_id)
        recognizer: Recognizer | None = None
        frames: list[np.ndarray] = []
        ended_by = "silence"
        try:
            while True:
                event = self._next_listening_event(ask_id)
                if isinstance(event, Key):
                    if not endpointer.in_speech:
                        if event.key == "0":
                            raise TransferRequested("caller_request", step=ask_id)
                        if event.key == "*":
                            raise MainMenuRequested
                    if event.key == "#":
                        if not frames:
                            return None
                        ended_by = "key"
                        break
                    continue
                happened = endpointer.push(event.samples)
                if happened is Event.NO_INPUT:
                    return None
                if happened is Event.START:
                    frames.extend(endpointer.preroll)
                    if self.engine is not None:
                        recognizer = self.engine.recognizer(None, self.channel.sample_rate)
                        for frame in endpointer.preroll:
                            recognizer.accept(frame)
                    continue
                if not endpointer.in_speech and not frames:
                    continue
                frames.append(event.samples)
                if recognizer is not None:
                    recognizer.accept(event.samples)
                if happened in (Event.END, Event.MAX_SPEECH):
                    ended_by = "limit" if happened is Event.MAX_SPEECH else "silence"
                    break
            self._end_turn()
            hyp = recognizer.finish() if recognizer is not None else None
            recognizer = None
            audio = Audio(np.concatenate(frames), self.channel.sample_rate)
            return Recording(
                audio=audio,
                text=hyp.text if hyp is not None else "",
                confidence=hyp.confidence if hyp is not None else None,
                ended_by=ended_by,
            )
        finally:
            if recognizer is not None:
                recognizer.close()

    def _record(
        self, ask_id: str, heard: Heard, sensitive: Sensitive | None, grammar: Grammar | None = None
    ) -> None:
        text, value = for_the_record(heard, sensitive, grammar)
        self.recorder.turn(TurnRecord(ask_id, str(heard.mode), text, value, heard.confidence))
        shown = {Mode.NO_INPUT: "(silence)", Mode.HANGUP: "(hung up)"}.get(heard.mode, text)
        self.recorder.line("caller", shown or "(unclear)")
        self.state.transcript.append(("caller", shown or "(unclear)"))

    def _next_event(self) -> ChannelEvent:
        event = self._pending.pop(0) if self._pending else self.channel.receive()
        if not isinstance(event, HangUp):
            self._arrived = event.at
        return event

    def _next_listening_event(self, ask_id: str) -> Frame | Key:
        """The next frame or key of an answer; a hang-up is recorded as the ask's turn."""
        event = self._next_event()
        if isinstance(event, HangUp):
            self.recorder.turn(TurnRecord(ask_id, str(Mode.HANGUP), None, None, None))
            raise CallerHungUp
        return event

    def _listen(
        self, ask_id: str, grammar: Grammar, kind: AskKind, corrects: Target | None = None
    ) -> Heard:
        t = self.settings.timeouts
        digits_mode = grammar.digits is not None
        read_back = corrects is not None and not digits_mode
        no_input = t.no_input_yes_no_ms if kind is AskKind.YES_NO else t.no_input_ms
        no_input = self.state.patient.no_input_ms(no_input)
        cfg = EndpointConfig(
            no_input_ms=no_input,
            end_silence_ms=t.end_silence_digits_ms if digits_mode else t.end_silence_ms,
            end_silence_complete_ms=t.end_silence_complete_ms,
            max_speech_ms=t.max_speech_ms,
        )
        endpointer = Endpointer(self.channel.sample_rate, cfg)
        self.channel.listening(ask_id)
        recognizer: Recognizer | None = None
        paused = False  # the recogniser was told the caller went quiet
        eager = False  # ... sooner, as the streaming decoder had a whole answer
        keys = ""
        frames_since_key = 0
        try:
            while True:
                event = self._next_listening_event(ask_id)
                if isinstance(event, Key):
                    frames_since_key = 0
                    if corrects is not None and read_back:
                        # a lone 1 or 2 is yes or no, but it may start a number (or * a
                        # tail): wait for more keys, # or a short pause before deciding
                        if event.key == "#":
                            return self._read_back_keys(grammar, keys or "#")
                        keys += event.key
                        if not corrects.may_be_keyed(keys):
                            first = grammar.key(keys[0])
                            if first is not None and not first.startswith(COMMAND_PREFIX):
                                return self._typed_ahead(grammar, keys)  # "1", then next asks
                            if len(keys) > 2 * MAX_DIGITS:
                                return self._read_back_keys(grammar, keys)  # a flood
                        continue
                    if not digits_mode:
                        value = grammar.key(event.key)
                        self._end_turn()
                        return Heard(Mode.DTMF, value, event.key, 1.0 if value else None)
                    if event.key == "*":
                        keys = ""
                        continue
                    if event.key == "#":
                        return self._keyed_digits(grammar, keys)
                    keys += event.key
                    assert grammar.digits is not None
                    if len(keys) >= grammar.digits.max:
                        return self._keyed_digits(grammar, keys)
                    continue
                assert isinstance(event, Frame)
                if keys:
                    frames_since_key += 1
                    wait = t.read_back_key_ms if read_back and len(keys) == 1 else t.inter_digit_ms
                    if frames_since_key * FRAME_MS >= wait:
                        if read_back:
                            return self._read_back_keys(grammar, keys)
                        return self._keyed_digits(grammar, keys)
                    continue
                happened = endpointer.push(event.samples)
                if happened is Event.NO_INPUT:
                    self._end_turn()
                    return Heard(Mode.NO_INPUT)
                if happened is Event.START:
                    if self.engine is None:
                        continue  # keys only in this locale: speech cannot be understood
                    recognizer = self.engine.recognizer(
                        grammar, self.channel.sample_rate, self._asr_context
                    )
                    for frame in endpointer.preroll:
                        recognizer.accept(frame)
                    continue
                if recognizer is None:
                    if endpointer.in_speech and happened in (Event.END, Event.MAX_SPEECH):
                        self._end_turn(endpointer)
                        return Heard(Mode.SPEECH, None, "", 0.0)
                    continue
                recognizer.accept(event.samples)
                quiet_ms = endpointer.silence_frames * FRAME_MS
                if not paused and 0 < t.early_decode_ms <= quiet_ms:
                    recognizer.pause(wait=not self.channel.realtime)
                    paused = True
                elif not (paused or eager) and 0 < _eager_after(t, endpointer.complete) <= quiet_ms:
                    recognizer.pause(wait=not self.channel.realtime, eager=True)
                    eager = True
                elif (paused or eager) and quiet_ms == 0:
                    recognizer.resume()
                    paused = eager = False
                if endpointer.speech_frames % PARTIAL_EVERY_FRAMES == 0:
                    partial = recognizer.partial()
                    endpointer.complete = grammar.is_complete(partial)
                    if read_back and is_correction(grammar, partial):
                        # digits are being said: wait for slow speakers as a digit ask does
                        endpointer.config = dataclasses.replace(
                            endpointer.config, end_silence_ms=t.end_silence_digits_ms
                        )
                if happened in (Event.END, Event.MAX_SPEECH):
                    self._end_turn(endpointer)
                    hyp = recognizer.finish()
                    recognizer = None
                    return spoken(
                        grammar, hyp.text, hyp.confidence, self.settings.confidence_reject
                    )
        finally:
            if recognizer is not None:
                recognizer.close()

    def _end_turn(self, endpointer: Endpointer | None = None) -> None:
        """The caller's turn ends with the event just taken: when it reached the channel
        (the reply's latency then counts any time it waited for this call's thread), or
        now on a channel without a clock. A live call also keeps how long the endpointer
        had been waiting in silence, so the record shows the caller's whole wait."""
        now = time.perf_counter()
        self._turn_end = min(self._arrived, now) if self._arrived > 0 else now
        if now - self._turn_end > LATE_TURN_SEC:
            log.debug(
                "[%s] turn heard %.0f ms after it ended on the line",
                self.recorder.call_id,
                (now - self._turn_end) * 1000,
            )
        self._turn_quiet_ms = (
            endpointer.silence_frames * FRAME_MS
            if endpointer is not None and self.channel.realtime
            else None
        )

    def _keyed_digits(self, grammar: Grammar, keys: str) -> Heard:
        self._end_turn()
        return keyed_digits(grammar, keys)

    def _typed_ahead(self, grammar: Grammar, keys: str) -> Heard:
        """Keys at a read-back that start with yes or no and that no correction can become
        (more than the number holds): the first key answers the read-back, the rest were
        typed ahead for the asks that follow. (Other keys that fit nothing are no match.)"""
        self._end_turn()
        value = grammar.key(keys[0])
        self._pending[:0] = [Key(k) for k in keys[1:]]
        return Heard(Mode.DTMF, value, keys[0], 1.0)

    def _read_back_keys(self, grammar: Grammar, keys: str) -> Heard:
        self._end_turn()
        return read_back_keys(grammar, keys)

    # --- helpers for flows -----------------------------------------------------------------
    @staticmethod
    def digits(value: str, kind: str = "auto", keep: int | None = None) -> SpokenDigits:
        return SpokenDigits(value, kind, keep)

    def correctable(self, number: str, grammar: str) -> Target:
        """A read-back of ``number``, correctable within the length rules of ``grammar``."""
        rule = self.grammars.get(grammar).digits
        if rule is None:
            raise ValueError(f"expected a digits grammar, got {grammar!r}")
        return Target(number, rule)


def _eager_after(t: Timeouts, complete: bool) -> int:
    """Milliseconds of the caller's silence after which a whole answer of the streaming
    decoder is decoded again (0: not before ``early_decode_ms``)."""
    if not complete or t.early_decode_ms <= 0 or t.early_decode_complete_ms <= 0:
        return 0
    return min(t.early_decode_complete_ms, t.early_decode_ms)
