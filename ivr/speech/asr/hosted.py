"""PocketSphinx for the calls, heard in the grammar decoder hosts (``ivr.speech.asr.hosts``):
an utterance's frames stream to the least busy host as they come, and go again, from the
first, to another if that host dies."""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

import numpy as np

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.asr.hosts import RETRIES, DecoderHosts, Host, HostDied
from ivr.speech.grammar import Grammar

_streams = itertools.count(1)


class HostedSphinxEngine(Engine):
    """PocketSphinx heard through host processes (free-form dictation stays in this one)."""

    name = "pocketsphinx"

    def __init__(self, locale: str, hosts: DecoderHosts) -> None:
        self.locale = locale
        self.hosts = hosts
        self._local: Engine | None = None
        self._local_lock = threading.Lock()

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        if grammar is None:
            return self._free_form().recognizer(None, sample_rate, context)
        return HostedRecognizer(self.hosts, grammar, sample_rate, context)

    def unscored(
        self, grammar: Grammar, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        return HostedRecognizer(self.hosts, grammar, sample_rate, context, score=False)

    def _free_form(self) -> Engine:
        """Dictation without Whisper: the language-model decoder, in this process."""
        with self._local_lock:
            if self._local is None:
                from ivr.speech.asr.sphinx import SphinxEngine

                self._local = SphinxEngine(self.locale, self.hosts.decoders)
            return self._local

    def unknown_words(self, words: set[str]) -> list[str]:
        return list(self.hosts.ask_any("unknown_words", sorted(words)))

    def warm(self) -> None:
        self.hosts.warm()


class HostedRecognizer(Recognizer):
    """One utterance streamed to a host; it keeps its frames to send again if the host dies.
    ``score``: as ``SphinxRecognizer``'s."""

    def __init__(
        self,
        hosts: DecoderHosts,
        grammar: Grammar,
        sample_rate: int,
        context: dict[str, Any] | None = None,
        *,
        score: bool = True,
    ) -> None:
        self.sample_rate = sample_rate
        self._score = score
        self._hosts = hosts
        self._grammar = grammar
        self._context = context if context is not None else {}
        self._sid = next(_streams)
        self._frames: list[bytes] = []
        self._host: Host | None = None
        self._done = False
        self._open()

    def _open(self) -> None:
        """To a host: the utterance's start, then every frame so far."""
        for _ in range(RETRIES + 1):
            host = self._hosts.take()
            try:
                cmn = self._context.get("sphinx_cmn")
                host.send(("open", self._sid, self._grammar, self.sample_rate, cmn, self._score))
                for data in self._frames:
                    host.send(("audio", self._sid, data))
            except HostDied:
                self._hosts.give(host)
                continue
            except BaseException:
                self._hosts.give(host)
                raise
            self._host = host
            return
        raise EngineError("grammar decoder processes keep dying")

    def _live(self) -> Host:
        """The host hearing this utterance (another, if the last one was lost)."""
        if self._host is None:
            self._open()
        assert self._host is not None
        return self._host

    def _again(self) -> None:
        """The host died: another hears the utterance from its first frame."""
        if self._host is not None:
            self._hosts.give(self._host)
            self._host = None
        self._open()

    def accept(self, frame: np.ndarray) -> None:
        if self._done:
            raise EngineError("recogniser already finished")
        data = frame.astype(np.int16, copy=False).tobytes()
        self._frames.append(data)
        if self._host is None:
            self._open()  # sends every frame, this one included
            return
        try:
            self._host.send(("audio", self._sid, data))
        except HostDied:
            self._again()  # sends every frame, this one included

    def _ask(self, op: str) -> Any:
        for _ in range(RETRIES + 1):
            try:
                return self._live().ask(op, self._sid)
            except HostDied:
                self._again()
        raise EngineError("grammar decoder processes keep dying")

    def partial(self) -> str:
        return "" if self._done else str(self._ask("partial"))

    def finish(self) -> Hypothesis:
        if self._done:
            raise EngineError("recogniser already finished")
        try:
            text, confidence, cmn = self._ask("finish")
        except BaseException:
            self.close()  # the host forgets the utterance, if it still holds it
            raise
        self._release()
        if cmn is not None:
            self._context["sphinx_cmn"] = cmn
        return Hypothesis(text, confidence, HostedSphinxEngine.name, self._score)

    def _release(self) -> None:
        self._done = True
        self._frames = []
        if self._host is not None:
            self._hosts.give(self._host)
            self._host = None

    def close(self) -> None:
        if self._done:
            return
        host = self._host
        self._release()
        if host is not None:
            with contextlib.suppress(HostDied):  # a dead host has nothing left to close
                host.send(("close", self._sid))
