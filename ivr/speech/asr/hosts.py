"""The grammar decoder in other processes: caller audio streams in, results come back.

PocketSphinx holds the interpreter lock while it decodes. In the process that carries
the calls, one core at most would decode every caller's grammar, and every call's media
would wait on it. Here ``count`` host processes (one per core by default, ``[asr]
workers``) each hold a :class:`SphinxEngine` (its lexicon, its bounded decoders), and an
utterance is a stream to the least busy host: its frames go as they come, ``partial()``
asks for the best guess so far and ``finish()`` for the hypothesis and the call's
cepstral mean. A host answers in the order it was sent to, so a partial result counts
every frame sent before it, as it did in the calls' own process (a simulated call's turns
end the same from one run to the next).

A host that dies (killed, out of memory) is replaced, and the utterance it was hearing is
sent again, from its first frame, to another host: the caller hears the reply a little
later.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import multiprocessing
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.grammar import Grammar

log = logging.getLogger(__name__)

RETRIES: Final = 2
REPLY_TIMEOUT_SEC: Final = 120.0
_requests = itertools.count(1)
_streams = itertools.count(1)


class HostDied(Exception):
    """The host process ended (or its pipe broke) before it answered."""


# --- in the host process ----------------------------------------------------------------------
def serve(conn: Connection, locale: str, decoders: int) -> None:
    """A host's loop: one SphinxEngine, the utterances streamed to it, until the pipe closes.

    A finish that finds every pair of decoders hearing someone else waits here, without
    blocking the loop, until a finish or a close frees one.
    """
    from ivr.speech.asr.sphinx import SphinxEngine, SphinxRecognizer

    engine = SphinxEngine(locale, decoders)
    streams: dict[int, SphinxRecognizer] = {}
    contexts: dict[int, dict[str, Any]] = {}
    failed: dict[int, str] = {}
    waiting: list[tuple[int, int]] = []  # (stream, request) of finishes waiting for a pair

    def finish(sid: int, req: int) -> bool:
        rec = streams[sid]
        try:
            if not rec.ready():
                return False
            del streams[sid]
            hyp = rec.finish()
            conn.send((req, True, (hyp.text, hyp.confidence, contexts[sid].get("sphinx_cmn"))))
        except EngineError as exc:
            streams.pop(sid, None)
            conn.send((req, False, str(exc)))
        contexts.pop(sid, None)
        return True

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        if op == "audio":
            _, sid, data = msg
            if sid in streams:
                try:
                    streams[sid].accept(np.frombuffer(data, np.int16))
                except EngineError as exc:
                    streams.pop(sid).close()
                    failed[sid] = str(exc)
        elif op == "open":
            _, sid, grammar, rate, cmn = msg
            contexts[sid] = {} if cmn is None else {"sphinx_cmn": cmn}
            try:
                streams[sid] = SphinxRecognizer(engine, grammar, rate, contexts[sid])
            except EngineError as exc:
                failed[sid] = str(exc)
        elif op == "close":
            _, sid = msg
            waiting = [w for w in waiting if w[0] != sid]
            contexts.pop(sid, None)
            failed.pop(sid, None)
            if sid in streams:
                streams.pop(sid).close()
        elif op in ("partial", "finish"):
            _, req, sid = msg
            if sid in failed:
                conn.send((req, False, failed.pop(sid)))
            elif sid not in streams:
                conn.send((req, False, "no such utterance"))
            elif op == "partial":
                conn.send((req, True, streams[sid].partial()))
            elif not finish(sid, req):
                waiting.append((sid, req))
        elif op == "unknown_words":
            _, req, words = msg
            conn.send((req, True, engine.unknown_words(set(words))))
        if op in ("finish", "close") and waiting:  # a pair may have come free
            waiting = [w for w in waiting if w[0] in streams and not finish(*w)]


# --- in the calls' process --------------------------------------------------------------------
class _Host:
    """One host process and the pipe to it; a reader thread hands answers to their askers."""

    def __init__(self, locale: str, decoders: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # never a fork of a process with threads
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=serve, args=(child, locale, decoders), daemon=True, name="ivr-grammar"
        )
        self.proc.start()
        child.close()
        self.streams = 0  # utterances it is hearing (guarded by DecoderHosts' lock)
        self.alive = True
        self._send = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, Future[tuple[bool, Any]]] = {}
        threading.Thread(target=self._read, daemon=True, name="ivr-grammar-reader").start()

    def send(self, msg: tuple[Any, ...]) -> None:
        with self._send:
            if not self.alive:
                raise HostDied
            try:
                self.conn.send(msg)
            except (OSError, ValueError) as exc:
                self._died()
                raise HostDied from exc

    def ask(self, op: str, *args: Any) -> Any:
        req = next(_requests)
        answer: Future[tuple[bool, Any]] = Future()
        with self._lock:
            if not self.alive:
                raise HostDied
            self._pending[req] = answer
        self.send((op, req, *args))
        try:
            ok, value = answer.result(timeout=REPLY_TIMEOUT_SEC)
        except FutureTimeout as exc:
            raise EngineError(f"the grammar decoder took over {REPLY_TIMEOUT_SEC:.0f} s") from exc
        if not ok:
            raise EngineError(str(value))
        return value

    def _read(self) -> None:
        while True:
            try:
                req, ok, value = self.conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                answer = self._pending.pop(req, None)
            if answer is not None:
                answer.set_result((ok, value))
        self._died()

    def _died(self) -> None:
        with self._lock:
            if not self.alive:
                return
            self.alive = False
            pending, self._pending = self._pending, {}
        for answer in pending.values():
            answer.set_exception(HostDied())

    def close(self) -> None:
        self.alive = False
        self.conn.close()  # the host's loop ends at the end of its pipe
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class DecoderHosts:
    """``count`` host processes of one locale's grammar decoder, started when first needed."""

    def __init__(self, locale: str, count: int, decoders: int) -> None:
        self.locale = locale
        self.count = max(1, count)
        self.decoders = decoders
        self.replaced = 0  # how many times a dead host was replaced
        self._lock = threading.Lock()
        self._hosts: list[_Host] = []

    def take(self) -> _Host:
        """The live host hearing the fewest utterances (dead ones replaced first)."""
        with self._lock:
            for i, host in enumerate(self._hosts):
                if not host.alive:
                    log.warning("a grammar decoder process died; starting a new one")
                    self.replaced += 1
                    self._hosts[i] = _Host(self.locale, self.decoders)
            while len(self._hosts) < self.count:
                self._hosts.append(_Host(self.locale, self.decoders))
            host = min(self._hosts, key=lambda h: h.streams)
            host.streams += 1
            return host

    def give(self, host: _Host) -> None:
        with self._lock:
            host.streams -= 1

    def ask_any(self, op: str, *args: Any) -> Any:
        for _ in range(RETRIES + 1):
            host = self.take()
            try:
                return host.ask(op, *args)
            except HostDied:
                continue
            finally:
                self.give(host)
        raise EngineError("grammar decoder processes keep dying")

    def warm(self) -> None:
        """Start every host and wait until each has loaded its engine."""
        with self._lock:
            while len(self._hosts) < self.count:
                self._hosts.append(_Host(self.locale, self.decoders))
            hosts = list(self._hosts)
        for host in hosts:
            try:
                host.ask("unknown_words", [])
            except HostDied:
                continue  # replaced when next taken

    def pids(self) -> list[int]:
        with self._lock:
            return [h.proc.pid for h in self._hosts if h.alive and h.proc.pid is not None]

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = self._hosts, []
        for host in hosts:
            host.close()


_shared: dict[tuple[str, int, int], DecoderHosts] = {}
_shared_lock = threading.Lock()


def shared_hosts(locale: str, count: int, decoders: int) -> DecoderHosts:
    """The process's hosts of this locale's grammar decoder: every call and engine shares them."""
    with _shared_lock:
        key = (locale, count, decoders)
        if key not in _shared:
            _shared[key] = DecoderHosts(locale, count, decoders)
        return _shared[key]


@atexit.register
def close_shared_hosts() -> None:
    for hosts in list(_shared.values()):
        hosts.close()


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
    """One utterance streamed to a host; it keeps its frames to send again if the host dies."""

    def __init__(
        self,
        hosts: DecoderHosts,
        grammar: Grammar,
        sample_rate: int,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self._hosts = hosts
        self._grammar = grammar
        self._context = context if context is not None else {}
        self._sid = next(_streams)
        self._frames: list[bytes] = []
        self._host: _Host | None = None
        self._done = False
        self._open()

    def _open(self) -> None:
        """To a host: the utterance's start, then every frame so far."""
        for _ in range(RETRIES + 1):
            host = self._hosts.take()
            try:
                cmn = self._context.get("sphinx_cmn")
                host.send(("open", self._sid, self._grammar, self.sample_rate, cmn))
                for data in self._frames:
                    host.send(("audio", self._sid, data))
            except HostDied:
                self._hosts.give(host)
                continue
            self._host = host
            return
        raise EngineError("grammar decoder processes keep dying")

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
        assert self._host is not None
        try:
            self._host.send(("audio", self._sid, data))
        except HostDied:
            self._again()  # sends every frame, this one included

    def _ask(self, op: str) -> Any:
        for _ in range(RETRIES + 1):
            assert self._host is not None
            try:
                return self._host.ask(op, self._sid)
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
        finally:
            self._release()
        if cmn is not None:
            self._context["sphinx_cmn"] = cmn
        return Hypothesis(text, confidence, HostedSphinxEngine.name)

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
