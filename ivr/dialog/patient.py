"""Patient mode: when a call switches to it, and what it changes in the dialog.

A call becomes patient when the caller asks for "slower" twice, or when asks end in no
input or no match several turns in a row (across asks; a good answer starts the count
again), or from its first word when the caller's number is remembered as patient. Then
every prompt is slower with longer pauses, digits are read back in pairs, every ask waits
longer for an answer, and every prompt ends by saying how to reach a person. "Normal
speed" leaves it. The dialog engine asks this policy; it keeps no counters of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

from ivr.config import Patient
from ivr.dialog.prompts import SpokenDigits
from ivr.speech.tts import Pause, Speech

TAIL: Final = "patient_tail"  # "press 0 at any time for a person"
TAIL_DIGITS: Final = "patient_tail_digits"  # inside digit entry 0 is a digit: "say agent"
ANNOUNCE: Final = "patient_on"
ANNOUNCE_REMEMBERED: Final = "patient_remembered"
LEFT: Final = "normal_speed_ack"
PAIRS: Final = "pairs"


@dataclass
class PatientMode:
    config: Patient = field(default_factory=Patient)
    active: bool = False
    remembered: bool = False  # the call started patient: the number was remembered
    ever: bool = False  # the call was patient at some point (for the record and the case)
    slower_asked: int = 0
    failed_in_a_row: int = 0

    # --- switching -------------------------------------------------------------------------
    def start_remembered(self) -> None:
        self.active = self.remembered = self.ever = True

    def on_slower(self) -> bool:
        """The caller asked for "slower"; True when that switches patient mode on."""
        self.slower_asked += 1
        return self._switch(self.slower_asked >= self.config.slower_requests)

    def on_failure(self) -> bool:
        """An ask's turn ended in no input or no match; True when that switches it on."""
        self.failed_in_a_row += 1
        return self._switch(self.failed_in_a_row >= self.config.failures_in_a_row)

    def on_answer(self) -> None:
        """A good answer: failures no longer run in a row."""
        self.failed_in_a_row = 0

    def leave(self) -> bool:
        """The caller said "normal speed"; True when the call was patient."""
        was = self.active
        self.active = False
        self.slower_asked = self.failed_in_a_row = 0
        return was

    def _switch(self, due: bool) -> bool:
        if self.active or not due:
            return False
        self.active = self.ever = True
        return True

    # --- what it changes -------------------------------------------------------------------
    def speed(self, slower: int) -> int:
        """The "slower" level prompts are spoken at: patient mode's, plus what the caller or
        the dialog added since it switched on (a repeated step, the last reprompt)."""
        return self.config.slower + slower if self.active else slower

    def no_input_ms(self, normal_ms: int) -> int:
        return max(normal_ms, self.config.no_input_ms) if self.active else normal_ms

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Prompt values as spoken: digits of a read-back go in pairs."""
        if not self.active:
            return params
        return {
            k: dataclasses.replace(v, kind=PAIRS) if isinstance(v, SpokenDigits) else v
            for k, v in params.items()
        }

    def tail(self, *, digit_entry: bool) -> str | None:
        """The prompt every ask's prompt ends with, if any."""
        if not self.active:
            return None
        return TAIL_DIGITS if digit_entry else TAIL


def ending_with(speech: Speech, tail: Speech, pause_ms: int) -> Speech:
    """``speech``, a pause, then ``tail``."""
    joined = " ".join(t for t in (speech.transcript, tail.transcript) if t)
    return Speech([*speech.parts, Pause(pause_ms), *tail.parts], joined)
