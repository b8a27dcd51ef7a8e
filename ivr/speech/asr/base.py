"""The one recognition interface every engine adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ivr.services.privacy import scrub
from ivr.speech.grammar import Grammar


def shown(text: str, grammar: Grammar | None) -> str:
    """What a debug line may show of what was heard: never the words of a number."""
    if grammar is not None and grammar.says_digits:
        return f"{len(text.split())} words"
    return repr(scrub(text))


@dataclass(frozen=True)
class Hypothesis:
    """What an engine heard in one utterance, with a confidence in [0, 1].

    ``scored`` False: the words alone were asked for (``Engine.unscored``); the confidence
    is 0 and says nothing, another engine judges the words.
    """

    text: str
    confidence: float
    engine: str
    scored: bool = True


class Recognizer(ABC):
    """One utterance: fed 20 ms frames as they arrive, then finished once."""

    sample_rate: int

    @abstractmethod
    def accept(self, frame: np.ndarray) -> None:
        """Feed one frame of int16 mono audio at ``sample_rate``."""

    @abstractmethod
    def partial(self) -> str:
        """The best guess so far (may be empty)."""

    def pause(self, *, wait: bool = False, eager: bool = False) -> None:  # noqa: B027 - optional hook
        """The caller has gone quiet: an adapter that decodes whole utterances may start on
        the audio so far, and show its answer through ``partial()`` (so that a complete
        answer ends the turn early); ``finish()`` keeps it unless ``resume()`` came.

        ``wait``: decode now and return when done. A simulated call's frames come as fast
        as they are taken, so there is no wait to hide a decode in, and waiting keeps its
        turns the same from one run to the next.

        ``eager``: sooner than usual (the streaming decoder has heard a whole answer): start
        only if nothing else is being decoded, so that under load it takes no worker from
        another caller. A later ``pause()`` may still start it.
        """

    def resume(self) -> None:  # noqa: B027 - optional hook, see pause()
        """The caller spoke again after ``pause()``: what was started on is not the answer."""

    @abstractmethod
    def finish(self) -> Hypothesis:
        """End the utterance and return the final hypothesis; releases engine resources."""

    def close(self) -> None:  # noqa: B027 - optional hook; most adapters release in finish()
        """Release resources when the utterance is abandoned without finish()."""


class Engine(ABC):
    """A loaded speech model shared by every call in the process."""

    name: str
    locale: str

    @abstractmethod
    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        """A fresh recogniser for one ask; ``grammar`` None means free-form.

        ``context`` is the call's own adaptation state (one dict per call), which an
        adapter may read and update across the utterances of that call.
        """

    def unscored(
        self, grammar: Grammar, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        """A recogniser for an ask whose answer another engine judges (Whisper's second
        opinion): an engine whose confidence costs work of its own may skip that work and
        answer unscored (``Hypothesis.scored``). By default, the usual recogniser."""
        return self.recognizer(grammar, sample_rate, context)

    @abstractmethod
    def unknown_words(self, words: set[str]) -> list[str]:
        """Grammar words the model cannot recognise (checked at start-up)."""

    def warm(self) -> None:
        """Load now what the first utterance would otherwise wait for (default: nothing)."""
        return
