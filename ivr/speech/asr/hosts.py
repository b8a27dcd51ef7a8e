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

This module starts and talks to the hosts; ``hosting`` is what runs in one, ``hosted``
the engine and recogniser the calls use.
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
from typing import Any, Final

from ivr.errors import EngineError
from ivr.speech.asr.hosting import serve
from ivr.speech.processes import worker_nice

log = logging.getLogger(__name__)

RETRIES: Final = 2
REPLY_TIMEOUT_SEC: Final = 120.0
_requests = itertools.count(1)


class HostDied(Exception):
    """The host process ended (or its pipe broke) before it answered."""


class Host:
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
        self._hosts: list[Host] = []

    def take(self) -> Host:
        """The live host hearing the fewest utterances (dead ones replaced first)."""
        dead: list[Host] = []
        try:
            with self._lock:
                if self.closed:
                    raise EngineError("the grammar decoder processes were stopped")
                for i, host in enumerate(self._hosts):
                    if not host.alive:
                        log.warning("a grammar decoder process died; starting a new one")
                        self.replaced += 1
                        dead.append(host)
                        self._hosts[i] = Host(self.locale, self.decoders)
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
            self._hosts.append(Host(self.locale, self.decoders))

    def give(self, host: Host) -> None:
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
