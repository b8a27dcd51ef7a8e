"""A grammar decoder host: the process that holds one :class:`SphinxEngine` and hears the
utterances the calls' process streams to it (``ivr.speech.asr.hosts``).

Messages come in order on one pipe: ``open``, ``audio`` and ``close`` of an utterance,
and ``partial``, ``finish`` and ``unknown_words`` requests, each answered with its
request number. The host answers in the order it was sent to, so a partial result counts
every frame sent before it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from multiprocessing.connection import Connection
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.grammar import Grammar

log = logging.getLogger(__name__)

WAIT_FOR_DECODER_SEC: Final = 30.0  # a finish waits this long in its host for a pair


class Hosting:
    """What a host process holds: one SphinxEngine and the utterances streamed to it.

    A finish that finds every pair of decoders hearing someone else waits here, without
    stopping the loop, until a pair comes free or ``WAIT_FOR_DECODER_SEC`` passes. Whatever
    goes wrong with one utterance is that utterance's error, answered to its asker; the
    loop, and every other utterance of the host, goes on.
    """

    def __init__(self, conn: Connection, locale: str, decoders: int) -> None:
        from ivr.speech.asr.sphinx import SphinxEngine, SphinxRecognizer

        self.conn = conn
        self.engine = SphinxEngine(locale, decoders)
        self.recognizer = SphinxRecognizer
        self.streams: dict[int, SphinxRecognizer] = {}
        self.contexts: dict[int, dict[str, Any]] = {}
        self.failed: dict[int, str] = {}
        self.waiting: list[tuple[int, int, float]] = []  # (stream, request, deadline)

    def run(self) -> None:
        while True:
            timeout = (
                max(0.0, min(w[2] for w in self.waiting) - time.monotonic())
                if self.waiting
                else None
            )
            try:
                if self.conn.poll(timeout):
                    msg = self.conn.recv()
                    if msg[0] == "stop":
                        return
                    self.handle(msg)
            except (EOFError, OSError):
                return  # the calls' process closed the pipe (or ended)
            except Exception:  # a bad message is lost, not the host
                log.exception("grammar host: a message could not be read")
            if self.waiting:  # a pair may have come free, or a wait run out
                self.waiting = [w for w in self.waiting if not self.finish(*w)]

    def handle(self, msg: tuple[Any, ...]) -> None:
        op = msg[0]
        if op == "audio":
            self.audio(msg[1], msg[2])
        elif op == "open":
            self.open(*msg[1:])
        elif op == "close":
            self.drop(msg[1])
        elif op == "partial":
            req, sid = msg[1], msg[2]
            if sid in self.failed or sid not in self.streams:
                self.answer(req, False, self.failed.get(sid, "no such utterance"))
                return
            try:
                self.answer(req, True, self.streams[sid].partial())
            except Exception as exc:  # the utterance's error, not the host's
                self.fail(sid, exc)
                self.answer(req, False, self.failed[sid])
        elif op == "finish":
            req, sid = msg[1], msg[2]
            deadline = time.monotonic() + WAIT_FOR_DECODER_SEC
            if not self.finish(sid, req, deadline):
                self.waiting.append((sid, req, deadline))
        elif op == "unknown_words":
            self.answer(msg[1], True, self.engine.unknown_words(set(msg[2])))

    def answer(self, req: int, ok: bool, value: Any) -> None:
        self.conn.send((req, ok, value))

    def open(self, sid: int, grammar: Grammar, rate: int, cmn: Any, score: bool) -> None:
        self.contexts[sid] = {} if cmn is None else {"sphinx_cmn": cmn}
        try:
            self.streams[sid] = self.recognizer(
                self.engine, grammar, rate, self.contexts[sid], score=score
            )
        except Exception as exc:  # the utterance's error, not the host's
            self.failed[sid] = str(exc)

    def audio(self, sid: int, data: bytes) -> None:
        if sid in self.streams:
            try:
                self.streams[sid].accept(np.frombuffer(data, np.int16))
            except Exception as exc:  # the utterance's error, not the host's
                self.fail(sid, exc)

    def fail(self, sid: int, exc: Exception) -> None:
        """The utterance cannot go on: its decoders go back, its error waits for its asker."""
        rec = self.streams.pop(sid, None)
        if rec is not None:
            with contextlib.suppress(Exception):
                rec.close()
        self.failed[sid] = str(exc) or type(exc).__name__

    def drop(self, sid: int) -> None:
        self.waiting = [w for w in self.waiting if w[0] != sid]
        self.contexts.pop(sid, None)
        self.failed.pop(sid, None)
        rec = self.streams.pop(sid, None)
        if rec is not None:
            with contextlib.suppress(Exception):
                rec.close()

    def finish(self, sid: int, req: int, deadline: float) -> bool:
        """Answer the utterance's finish, or False if it must wait for a pair of decoders."""
        if sid in self.failed or sid not in self.streams:
            self.answer(req, False, self.failed.pop(sid, "no such utterance"))
            self.contexts.pop(sid, None)
            return True
        rec = self.streams[sid]
        try:
            if not rec.ready():
                if time.monotonic() < deadline:
                    return False
                raise EngineError(f"no grammar decoder came free in {WAIT_FOR_DECODER_SEC:.0f} s")
            del self.streams[sid]
            hyp = rec.finish()
            cmn = self.contexts[sid].get("sphinx_cmn")
            self.answer(req, True, (hyp.text, hyp.confidence, cmn))
        except Exception as exc:  # the utterance's error, not the host's
            self.fail(sid, exc)
            self.answer(req, False, self.failed.pop(sid))
        self.contexts.pop(sid, None)
        return True


def serve(conn: Connection, locale: str, decoders: int, nice: int = 0) -> None:
    """A host process's loop, until the pipe closes; ``nice`` nicer than its parent."""
    if nice:
        os.nice(nice)
    Hosting(conn, locale, decoders).run()
