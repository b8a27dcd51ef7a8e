"""`ivr serve`: answer SIP calls, one thread per call, every call on the same flows.

Calls are isolated: each runs in its own thread with its own channel, dialog and record;
a fault in one (bad packets, a crash in a flow) ends that call alone. SIGTERM stops new
calls (503), lets the calls in progress finish for a grace period, then ends the rest
(each record is complete, outcome ``abandoned``) and exits. After a crash (``kill -9``,
power loss) the next start closes the calls this server left in progress: ``abandoned``,
reason ``interrupted``, with every turn written up to the crash.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ivr.agents.routing import PBX_WAIT_S, RING_S, AgentRouter
from ivr.channels.base import HangUp
from ivr.channels.sip import SipChannel
from ivr.channels.sip_guard import (
    DigestAuth,
    SourceGuard,
    algorithms_from_config,
    users_from_config,
)
from ivr.channels.sip_stack import Endpoint, EndpointConfig, Leg
from ivr.config import Settings
from ivr.datafiles import read_yaml
from ivr.errors import ConfigError
from ivr.qa.tape import CallTape
from ivr.services.calls import recover_interrupted
from ivr.services.privacy import mask_phone
from ivr.session import Runtime

log = logging.getLogger("ivr.serve")

SIGNAL_POLL_S: Final = 0.2  # how soon the main thread sees SIGTERM or SIGINT
AUDIO_ON_TIME_WARN: Final = 0.98  # a call whose audio went out later than this is logged


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 5080
    max_calls: int = 50
    agent_uri: str | None = None
    allowed_peers: tuple[str, ...] = ()
    record_dir: Path | None = None
    fixtures: dict[str, Any] | None = None
    grace_s: float = 20.0
    ring_s: float = 0.5
    agent_ring_s: float = RING_S  # an agent's phone that rings this long is skipped
    agent_wait_s: float = PBX_WAIT_S  # the --agent address that takes this long is busy
    server_id: str | None = None  # names this server's calls in the store (default host:port)


def load_fixtures(path: Path) -> dict[str, Any]:
    """The ``fixtures`` block of a test call (or a file holding just that block)."""
    data = read_yaml(path, "fixtures file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    fixtures = data.get("fixtures", data)
    if not isinstance(fixtures, dict):
        raise ConfigError(f"{path}: fixtures: expected a mapping")
    return fixtures


class Server:
    def __init__(self, settings: Settings, options: ServeOptions, runtime: Runtime | None = None):
        self.settings = settings
        self.options = options
        self.runtime = runtime or Runtime(settings)
        self.server_id = options.server_id or f"{socket.gethostname()}:{options.port}"
        self.runtime.server_id = self.server_id
        self.fixed_code: str | None = None
        # transfers go to free desk agents first, then to --agent (see ivr/agents/routing.py)
        self.router = AgentRouter(
            self.runtime.store,
            self.runtime.queue,
            fallback_uri=options.agent_uri,
            ring_s=options.agent_ring_s,
            fallback_wait_s=options.agent_wait_s,
        )
        if options.fixtures:
            self._apply_fixtures(options.fixtures)
        sec = settings.sip
        users = users_from_config(sec.users)
        self.endpoint = Endpoint(
            EndpointConfig(
                host=options.host,
                port=options.port,
                max_calls=options.max_calls,
                allowed_peers=options.allowed_peers,
                ring_s=options.ring_s,
                auth=DigestAuth(
                    users,
                    realm=sec.realm,
                    nonce_ttl_s=sec.nonce_ttl_s,
                    algorithms=algorithms_from_config(sec.algorithms),
                    secret=sec.nonce_secret.encode() or None,
                )
                if users
                else None,
                guard=SourceGuard(
                    rate_per_s=sec.rate_per_s,
                    burst=sec.burst,
                    drop_limit=sec.drop_limit,
                    fail_limit=sec.fail_limit,
                    block_s=sec.block_s,
                ),
                retry_after_s=sec.retry_after_s,
            ),
            self._on_call,
        )
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._signalled = False  # SIGTERM or SIGINT came
        self.calls_done = 0

    def _apply_fixtures(self, fixtures: dict[str, Any]) -> None:
        try:
            for account in fixtures.get("accounts") or []:
                self.runtime.accounts.add(str(account["phone"]), str(account.get("name", "Caller")))
            for ticket in fixtures.get("tickets") or []:
                if self.runtime.tickets.get(str(ticket["number"])) is None:
                    self.runtime.tickets.seed(ticket)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"fixtures: {exc}") from exc
        code = fixtures.get("verification_code")
        self.fixed_code = None if code is None else str(code)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        began = time.time()
        self.endpoint.start()  # binds the port first: one live server per host and port
        closed = recover_interrupted(
            self.runtime.store, server=self.server_id, started_before=began
        )
        if closed:
            log.warning(
                "closed %d calls left in progress by an earlier run of %s (interrupted)",
                len(closed),
                self.server_id,
            )
        log.info(
            "listening for SIP on udp %s:%d (up to %d calls)",
            self.options.host,
            self.options.port,
            self.options.max_calls,
        )
        locales = list(dict.fromkeys([self.settings.locale, *self.settings.dnis.values()]))
        # the recognisers load while the first caller hears the welcome, not on their answer
        self.runtime.warm_in_background(locales)
        threading.Thread(
            target=self._check_prompts, args=(locales,), name="check-prompts", daemon=True
        ).start()

    def _check_prompts(self, locales: list[str]) -> None:
        """Say when the prompt cache lacks what callers will hear: each missing segment is made
        while a caller waits, by the voice in this process (G.711 plays at 8 kHz, G.722 at 16)."""
        from ivr.dialog.prompt_cache import coverage

        try:
            for found in coverage(self.settings, self.runtime.synth, locales):
                warning = found.warning()
                if warning:
                    log.warning(warning)
        except Exception as exc:  # a check that fails must not stop the server
            log.warning("prompt cache not checked: %s", exc)

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.start()
        print(f"ivr serve: ready on sip:ivr@{self.options.host}:{self.options.port}", flush=True)
        while not self._signalled:
            time.sleep(SIGNAL_POLL_S)
        self.shutdown()

    def _on_signal(self, _signum: int, _frame: object) -> None:
        # a plain flag, no lock: the handler runs between two bytecodes of the main thread,
        # which may be holding the very lock that Event.set() takes (the server then never
        # stopped: seen when SIGTERM came just as the server had said it was ready)
        self._signalled = True

    def shutdown(self) -> None:
        log.info("shutting down: no new calls; %d in progress", len(self._threads))
        self.endpoint.draining = True
        deadline = time.monotonic() + self.options.grace_s
        while self._active() and time.monotonic() < deadline:
            time.sleep(0.1)
        for leg in list(self.endpoint.legs.values()):
            leg.events.put(HangUp("shutdown"))  # the dialog ends; its record is complete
        for thread in list(self._threads.values()):
            thread.join(10)
        self.endpoint.stop()
        self.runtime.stopping.set()
        self.runtime.engines.close()  # the recognition workers, even one still loading a model
        log.info("stopped after %d calls", self.calls_done)

    def _active(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads.values())

    # --- calls -----------------------------------------------------------------------------
    def _on_call(self, leg: Leg) -> bool:
        """On the SIP thread: answer (True) or refuse as busy (False)."""
        if self._active() >= self.options.max_calls:
            log.warning("[%s] refused: %d calls already", leg.call_id, self.options.max_calls)
            return False
        thread = threading.Thread(target=self._run, args=(leg,), name=f"call-{leg.call_id[:8]}")
        with self._lock:
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
            self._threads[leg.call_id] = thread
        thread.start()
        return True

    def _run(self, leg: Leg) -> None:
        started = time.monotonic()
        channel = SipChannel(leg, agent_uri=self.options.agent_uri, router=self.router)
        tape = CallTape(channel) if self.options.record_dir is not None else None
        try:
            result = self.runtime.run_call(
                tape or channel,
                fixed_code=self.fixed_code,
                observer=tape.observe if tape is not None else None,
            )
        except Exception:  # the call's own boundary already records; this is the last net
            log.exception("[%s] call thread failed", leg.call_id)
            channel.hang_up()
            return
        finally:
            self.calls_done += 1
        if tape is not None and self.options.record_dir is not None:
            tape.save(self.options.record_dir / result.call_id, result)
        on_time = leg.audio_on_time()
        if on_time is not None and on_time < AUDIO_ON_TIME_WARN:
            log.warning(
                "[%s] the media clock fell behind: %.0f%% of this call's audio went out on "
                "time (more calls than this machine serves: lower --max-calls)",
                leg.call_id,
                on_time * 100,
            )
        log.info(
            json.dumps(
                {
                    "event": "call_ended",
                    "call_id": result.call_id,
                    "sip_call_id": leg.call_id,
                    "caller": mask_phone(leg.caller),
                    "dialled": leg.dialled,
                    "codec": leg.codec,
                    "states": result.states,
                    "outcome": str(result.outcome),
                    "reason": result.transfer_reason,
                    "seconds": round(time.monotonic() - started, 1),
                    "rx_underruns": leg.rx_underruns,
                    "audio_on_time": None if on_time is None else round(on_time, 4),
                }
            )
        )
