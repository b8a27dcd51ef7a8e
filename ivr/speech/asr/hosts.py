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
import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.grammar import Grammar
from ivr.speech.processes import worker_nice

log = logging.getLogger(__name__)

RETRIES: Final = 2
REPLY_TIMEOUT_SEC: Final = 120.0
WAIT_FOR_DECODER_SEC: Final = 30.0  # a finish waits this long in its host for a pair
_requests = itertools.count(1)
_streams = itertools.count(1)


class HostDied(Exception):
    """The host process ended (or its pipe broke) before it answered."""


# --- in the host process ----------------------------------------------------------------------
class _Hosting:
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
    _Hosting(conn, locale, decoders).run()


# --- in the calls' process --------------------------------------------------------------------
class _Host:
    """One host process and the pipe to it; a reader thread hands answers to their askers."""

    def __init__(self, locale: str, decoders: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # never a fork of a process with threads
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=serve,
            args=(child, locale, decoders, worker_nice()),
            daemon=True,
            name="ivr-grammar",
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
            with self._lock:
                self._pending.pop(req, None)
            raise EngineError(f"the grammar decoder took over {REPLY_TIMEOUT_SEC:.0f} s") from exc
        if not ok:
            raise EngineError(str(value))
        return value

    def _read(self) -> None:
        try:
            while True:
                try:
                    req, ok, value = self.conn.recv()
                except (EOFError, OSError):
                    return
                except Exception:  # an answer that cannot be read: its asker times out
                    if not self.alive or self.conn.closed:
                        return  # closed while reading
                    log.exception("grammar host: an answer could not be read")
                    continue
                with self._lock:
                    answer = self._pending.pop(req, None)
                if answer is not None:
                    answer.set_result((ok, value))
        finally:
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
        with self._send, contextlib.suppress(OSError, ValueError):
            # the host ends its loop (closing our end alone is not seen by the host while
            # our reader thread is blocked reading it)
            self.conn.send(("stop",))
        self._died()  # whoever waits for an answer hears at once that none will come
        with contextlib.suppress(OSError):
            self.conn.close()

    def join(self) -> None:
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
        self.closed = False
        self._lock = threading.Lock()
        self._hosts: list[_Host] = []

    def take(self) -> _Host:
        """The live host hearing the fewest utterances (dead ones replaced first)."""
        dead: list[_Host] = []
        try:
            with self._lock:
                if self.closed:
                    raise EngineError("the grammar decoder processes were stopped")
                for i, host in enumerate(self._hosts):
                    if not host.alive:
                        log.warning("a grammar decoder process died; starting a new one")
                        self.replaced += 1
                        dead.append(host)
                        self._hosts[i] = _Host(self.locale, self.decoders)
                self._fill()
                host = min(self._hosts, key=lambda h: h.streams)
                host.streams += 1
                return host
        except (OSError, RuntimeError) as exc:
            raise EngineError(f"a grammar decoder process could not start: {exc}") from exc
        finally:
            for old in dead:  # a host marked dead may still run: it ends with its pipe
                old.close()

    def _fill(self) -> None:
        """Under the lock: start hosts up to ``count``."""
        while len(self._hosts) < self.count:
            self._hosts.append(_Host(self.locale, self.decoders))

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
        """Start every host and wait until each has loaded its engine (none once closed)."""
        with self._lock:
            if self.closed:
                raise EngineError("the grammar decoder processes were stopped")
            self._fill()
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
        """Stop every host (for good: an utterance begun after this is an EngineError)."""
        with self._lock:
            self.closed = True
            hosts, self._hosts = self._hosts, []
        for host in hosts:
            host.close()
        for host in hosts:
            host.join()


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
        self._host: _Host | None = None
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

    def _live(self) -> _Host:
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
