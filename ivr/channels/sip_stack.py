"""SIP and RTP for `ivr serve`: with :mod:`ivr.channels.sip_signalling` (transports and the
per-request policies), the only modules that know the SIP library.

Built on aiosipua (SIP: parsing, dialogs, transactions, 2xx retransmission, CANCEL, REFER)
and aiortp (RTP: packets, jitter buffer, RFC 4733 telephone-events, RTCP). What this module
adds around them, each proven by a test under ``tests/sip/``:

* a retransmitted INVITE is the same call (the library would start a second dialog);
* Record-Route is copied into our responses, so calls through a proxy work;
* our BYE (and REFER) is retransmitted over UDP until answered (RFC 3261 timer E);
* G.711 encoding is the project's own, bit-exact with the reference (the library's A-law
  is inverted; :mod:`ivr.channels.sip_media`, with the codec choice and RFC 4733 keys);
* one 20 ms clock per process sends a packet for every call every 20 ms, silence included,
  and hands the dialog one received frame per tick from a small playout buffer, so timeouts
  run on time even when the peer sends nothing;
* access control: peers outside the allowed networks authenticate (digest, RFC 3261 §22)
  or get 403, and are slowed then blocked when they flood (:mod:`ivr.channels.sip_guard`);
  REGISTER with credentials is answered 200 (phones that register before calling);
* a call limit (503 with Retry-After, so a proxy tries another server), OPTIONS;
* in-band keypad tones when the peer negotiated no telephone-events.

The endpoint runs its own asyncio loop in one thread. Calls are handed to the application
as :class:`Leg` objects whose methods are safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from aiortp import RTPSession
from aiortp.codecs.g722 import G722Codec
from aiortp.port_allocator import PortAllocator
from aiosipua import IncomingCall, SdpNegotiationError, SipRequest, SipResponse, negotiate_sdp
from aiosipua.dialog import DialogState

from ivr.channels.base import ChannelEvent, Frame, HangUp, Key
from ivr.channels.sip_guard import DigestAuth, SourceGuard
from ivr.channels.sip_media import CODECS, FRAME, G711, RATE, KeyEvents, choose_codec
from ivr.channels.sip_signalling import USER_AGENT, Tcp, Uas, Udp, copy_record_route
from ivr.errors import ChannelError
from ivr.services.privacy import mask_phone
from ivr.speech.dtmf import ToneDetector

log = logging.getLogger(__name__)

TICK_S: Final = 0.02
T1: Final = 0.5
T2: Final = 4.0
TIMER_B: Final = 64 * T1
RTP_BIND_ATTEMPTS: Final = 5  # an RTP port pair taken by another process: try the next
# Received audio waits for the 20 ms clock. Past RX_JITTER_FRAMES frames the clock was late
# (the loop thread starved under load, or skipping far-behind ticks) and the backlog goes to
# the dialog at once: dropping it lost the first syllables of callers' answers at 10 calls.
# Only a backlog over MAX_RX_MS (the clock stopped, or a peer sending too fast) is dropped.
RX_JITTER_FRAMES: Final = 3
MAX_RX_MS: Final = 2000
_DIGITS: Final = re.compile(r"\d+")


@dataclass(frozen=True)
class EndpointConfig:
    host: str = "127.0.0.1"
    port: int = 5080
    rtp_ports: tuple[int, int] = (20000, 30000)
    max_calls: int = 50
    ring_s: float = 0.5  # 180 Ringing this long before answering (a caller hears one ring)
    tcp: bool = True  # SIP over TCP too, on the same port
    # trusted networks: requests from them need no authentication and are never throttled
    # (empty: loopback sources only)
    allowed_peers: tuple[str, ...] = ()
    # everyone else: digest authentication (None: 403 for their INVITEs) and flood control
    auth: DigestAuth | None = None
    guard: SourceGuard | None = None
    retry_after_s: int = 10  # in the 503 over the call limit
    release_after_s: float = TIMER_B  # a refused INVITE's state is kept this long (timer H)


def caller_number(request: SipRequest) -> str | None:
    """The caller's number: P-Asserted-Identity (set by a trusted PBX) before From."""
    for header in ("p-asserted-identity", "from"):
        value = request.get_header(header)
        if not value:
            continue
        match = re.search(r"(?:sips?|tel):\+?([^@;>]+)", value)
        if match:
            digits = "".join(_DIGITS.findall(match.group(1)))
            if digits:
                return digits
    return None


def dialled_number(request: SipRequest) -> str | None:
    match = re.match(r"sips?:\+?([^@;>]+)@", request.uri or "")
    return match.group(1) if match else None


@dataclass
class Leg:
    """One call: its dialog and its media. Thread-safe for the application."""

    call_id: str
    caller: str | None
    dialled: str | None
    source: tuple[str, int]
    codec: str
    telephone_events: bool
    endpoint: Endpoint = field(repr=False)
    rate: int = RATE
    # a frame every 20 ms for every call: the C queue hands one over in half the CPU of Queue
    events: queue.SimpleQueue[ChannelEvent] = field(default_factory=queue.SimpleQueue, repr=False)
    ended: threading.Event = field(default_factory=threading.Event, repr=False)
    end_reason: str | None = None
    rx_underruns: int = 0
    rx_frames: int = 0
    tx_frames: int = 0
    media_from: float = 0.0  # monotonic: when its media began (0: not yet)
    media_to: float = 0.0  # monotonic: when its media closed (0: still open)
    _tx: collections.deque[np.ndarray] = field(default_factory=collections.deque, repr=False)
    _tx_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rx: bytearray = field(default_factory=bytearray, repr=False)
    _call: IncomingCall | None = field(default=None, repr=False)
    _rtp: Any = field(default=None, repr=False)
    _timestamp: int = 0
    _tones: ToneDetector | None = field(default=None, repr=False)
    _refer_waiter: asyncio.Future[int] | None = field(default=None, repr=False)

    # --- the application side (any thread) ---------------------------------------------
    @property
    def frame(self) -> int:
        return self.rate // 50

    def play(self, samples: np.ndarray) -> None:
        n = self.frame
        frames = [samples[i : i + n] for i in range(0, len(samples), n)]
        with self._tx_lock:
            self._tx.clear()
            self._tx.extend(frames)

    def stop_playback(self) -> None:
        with self._tx_lock:
            self._tx.clear()

    def is_playing(self) -> bool:
        with self._tx_lock:
            return bool(self._tx)

    def audio_on_time(self) -> float | None:
        """The share of the 20 ms frames due since the media began that were sent: under 1
        when the clock fell behind (a machine past its capacity plays prompts stretched
        and cut). None before a second of media."""
        if not self.media_from:
            return None
        due = ((self.media_to or time.monotonic()) - self.media_from) / TICK_S
        return None if due < 1 / TICK_S else min(1.0, self.tx_frames / due)

    def hang_up(self) -> None:
        """End the call from our side (BYE, retransmitted until answered)."""
        self.endpoint.run_soon(self.endpoint.end_leg, self, "ivr")

    def transfer(self, target: str, timeout: float = 30.0) -> int:
        """Ask the caller's side to call ``target`` (REFER); the final status of that call."""
        future = asyncio.run_coroutine_threadsafe(
            self.endpoint.refer(self, target, timeout), self.endpoint.loop
        )
        try:
            return future.result(timeout + 5)
        except (TimeoutError, ChannelError):
            return 408

    # --- the loop side ---------------------------------------------------------------------
    def _tick(self) -> None:
        with self._tx_lock:
            out = self._tx.popleft() if self._tx else None
        n = self.frame
        if out is None or len(out) < n:
            pad = np.zeros(n, dtype=np.int16)
            if out is not None:
                pad[: len(out)] = out
            out = pad
        if self._rtp is not None:
            # silence is sent too: peers and PBXs close calls whose RTP stops
            payload = self._rtp.codec.encode(out.astype("<i2").tobytes())
            self._rtp.send_audio(payload, self._timestamp)
            self._timestamp = (self._timestamp + FRAME) & 0xFFFFFFFF  # 8 kHz clock, G.722 too
            self.tx_frames += 1
        if len(self._rx) < n * 2:
            self.rx_underruns += 1
            self._received(np.zeros(n, dtype=np.int16))
            return
        while True:  # one frame a tick, and the backlog of a late clock
            frame = np.frombuffer(bytes(self._rx[: n * 2]), dtype="<i2").astype(np.int16)
            del self._rx[: n * 2]
            self.rx_frames += 1
            self._received(frame)
            if len(self._rx) < n * 2 * RX_JITTER_FRAMES:
                return

    def _received(self, frame: np.ndarray) -> None:
        now = time.perf_counter()
        if self._tones is not None:
            key = self._tones.push(frame)
            if key is not None:
                self.events.put(Key(key, now))
        self.events.put(Frame(frame, now))

    def _on_audio(self, pcm: bytes, _timestamp: int) -> None:
        self._rx.extend(pcm)
        limit = self.rate * MAX_RX_MS // 1000 * 2
        if len(self._rx) > limit:
            del self._rx[: len(self._rx) - limit]


class Endpoint:
    """A SIP endpoint on one UDP address; calls arrive through ``on_call``.

    ``on_call(leg)`` runs on the endpoint's loop and must return quickly: True to answer,
    False to refuse (503 with Retry-After, over capacity). Answered legs deliver events on
    ``leg.events``.
    """

    def __init__(self, config: EndpointConfig, on_call: Callable[[Leg], bool]) -> None:
        self.config = config
        self.on_call = on_call
        self.loop = asyncio.new_event_loop()
        self.legs: dict[str, Leg] = {}
        self.draining = False
        self._thread = threading.Thread(target=self._run, name="sip", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._uas: Uas | None = None
        self._servers: list[Uas] = []
        self._ports = PortAllocator(config.rtp_ports)
        self._pending: dict[tuple[str, str], asyncio.Future[SipResponse]] = {}
        self._networks = [ipaddress.ip_network(p, strict=False) for p in config.allowed_peers]

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise ChannelError(
                f"cannot listen for SIP on {self.config.host}:{self.config.port}: {self._error}"
            ) from self._error

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        with contextlib.suppress(Exception):
            future.result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _start(self) -> None:
        address = (self.config.host, self.config.port)
        transports: list[Any] = [Udp(local_addr=address)]
        if self.config.tcp:
            transports.append(Tcp(local_addr=address))
        for transport in transports:
            transport.guard = self.config.guard
            uas = Uas(transport, user_agent=USER_AGENT)
            uas.endpoint = self
            uas.on_invite = self._on_invite
            uas.on_bye = self._on_bye
            uas.on_cancel = self._on_cancel
            uas.on_reinvite = self._on_reinvite
            uas.on_ack_timeout = lambda call: self._closed_by_peer(call.call_id, "no ACK")
            uas.on_transfer_progress = self._on_transfer_progress
            await uas.start()
            self._servers.append(uas)
        self._uas = self._servers[0]
        self._next_tick = self.loop.time() + TICK_S
        self.loop.call_at(self._next_tick, self._tick)

    async def _shutdown(self) -> None:
        for leg in list(self.legs.values()):
            await self._end(leg, "shutdown")
        for uas in self._servers:
            await uas.stop()

    def allowed(self, addr: tuple[str, int]) -> bool:
        try:
            ip = ipaddress.ip_address(addr[0])
        except ValueError:
            return False
        if self._networks:
            return any(ip in net for net in self._networks)
        return ip.is_loopback

    # --- the 20 ms clock -------------------------------------------------------------------
    def _tick(self) -> None:
        for leg in list(self.legs.values()):
            try:
                leg._tick()
            except Exception:  # one call's fault never stops the clock of the others
                log.exception("[%s] media tick failed", leg.call_id)
        self._next_tick += TICK_S
        now = self.loop.time()
        if self._next_tick < now - 0.2:  # far behind (suspended): skip, do not burst
            self._next_tick = now + TICK_S
        self.loop.call_at(self._next_tick, self._tick)

    # --- incoming calls --------------------------------------------------------------------
    def _on_invite(self, call: IncomingCall) -> None:
        self.loop.create_task(self._answer(call))

    async def _answer(self, call: IncomingCall) -> None:
        try:
            await self._answer_call(call)
        finally:
            if call.dialog.state == DialogState.TERMINATED and call.call_id not in self.legs:
                # refused (503, 488, ...): the library keeps the call until the caller ACKs
                # our answer, which a scanner never does; forget it after timer H
                self.loop.call_later(self.config.release_after_s, self._release, call)

    def _release(self, call: IncomingCall) -> None:
        for uas in self._servers:
            if uas._calls.get(call.call_id) is call:
                del uas._calls[call.call_id]
                uas._remove_invite_transaction(call.invite)

    async def _answer_call(self, call: IncomingCall) -> None:
        request = call.invite
        if self.draining:
            call.reject(503, "Service Unavailable")
            return
        if call.sdp_offer is None:
            call.reject(488, "Not Acceptable Here")  # no offer: we do not do late offers
            return
        try:
            pt = choose_codec(call.sdp_offer)
        except (SdpNegotiationError, ValueError) as exc:
            log.warning("INVITE %s: no usable audio offer: %s", request.call_id, exc)
            call.reject(488, "Not Acceptable Here")
            return
        offer_audio = next(m for m in call.sdp_offer.media if m.media == "audio")
        remote_ip = offer_audio.connection or call.sdp_offer.connection
        if remote_ip is None or not offer_audio.port:
            call.reject(488, "Not Acceptable Here")
            return
        events = next(
            (
                c.payload_type
                for c in offer_audio.codecs
                if c.encoding_name.lower() == "telephone-event"
            ),
            None,
        )
        codec, rate = CODECS[pt]
        leg = Leg(
            call_id=request.call_id or "",
            caller=caller_number(request),
            dialled=dialled_number(request),
            source=call.source_addr,
            codec=codec,
            telephone_events=events is not None,
            endpoint=self,
            rate=rate,
        )
        if not self.on_call(leg):
            # over the call limit: a proxy tries another server, a phone retries later
            call._send_response(
                503,
                "Service Unavailable",
                extra_headers={"Retry-After": str(self.config.retry_after_s)},
            )
            call.dialog.terminate()
            return
        copy_record_route(call)
        call.ringing()
        await asyncio.sleep(self.config.ring_s)
        if call.dialog.state == DialogState.TERMINATED or self.draining:
            if call.dialog.state != DialogState.TERMINATED:
                call.reject(503, "Service Unavailable")
            log.info("[%s] cancelled before the answer", leg.call_id)
            leg.end_reason = "cancelled"
            leg.events.put(HangUp("caller"))
            leg.ended.set()
            return
        error: OSError | None = None
        for _attempt in range(RTP_BIND_ATTEMPTS):
            try:
                rtp = await RTPSession.create(
                    local_addr=(self.config.host, 0),
                    remote_addr=(remote_ip.address, offer_audio.port),
                    payload_type=pt,
                    codec=G711(codec) if codec != "G722" else G722Codec(),
                    dtmf_payload_type=events if events is not None else 101,
                    jitter_prefetch=2,
                    port_allocator=self._ports,
                    symmetric_rtp=True,
                )
                break
            except OSError as exc:
                # the allocator tries a pair, then lets it go until the session binds it:
                # another process (a second server on this host) can take it between the
                # two. That pair stays marked as ours, so the next attempt takes the next.
                log.warning("[%s] RTP port taken meanwhile: %s", leg.call_id, exc)
                error = exc
        else:
            log.error("INVITE %s: no RTP port: %s", request.call_id, error)
            call.reject(503, "Service Unavailable")
            leg.events.put(HangUp("failed"))
            return
        port = int(rtp._allocated_rtp_port or 0)
        answer, _ = negotiate_sdp(
            call.sdp_offer,
            self.config.host,
            port,
            supported_codecs=[pt],
            dtmf_payload_type=events or 101,
        )
        rtp.on_audio = leg._on_audio
        # our own key decoder in place of the library's, which drops repeated keys
        rtp._dtmf_receiver = KeyEvents(  # type: ignore[assignment]
            lambda key: leg.events.put(Key(key, time.perf_counter()))
        )
        leg._rtp = rtp
        leg.media_from = time.monotonic()
        leg._call = call
        leg._tones = None if leg.telephone_events else ToneDetector(rate)
        self.legs[leg.call_id] = leg
        call.accept(answer)
        log.info(
            "[%s] answered: caller %s, %s, telephone-events %s",
            leg.call_id,
            mask_phone(leg.caller),
            codec,
            "yes" if leg.telephone_events else "no (in-band tones)",
        )

    def _on_reinvite(self, call: IncomingCall) -> None:
        """A re-INVITE (hold, session refresh, codec change): keep the media, answer again."""
        leg = self.legs.get(call.call_id)
        if leg is None or call.sdp_offer is None:
            call.reject(488, "Not Acceptable Here")
            return
        try:
            offer_audio = next(m for m in call.sdp_offer.media if m.media == "audio")
            conn = offer_audio.connection or call.sdp_offer.connection
            answer, _ = negotiate_sdp(
                call.sdp_offer,
                self.config.host,
                leg._rtp._allocated_rtp_port,
                supported_codecs=[next(pt for pt, (c, _) in CODECS.items() if c == leg.codec)],
                dtmf_payload_type=101,
            )
        except (SdpNegotiationError, StopIteration, ValueError) as exc:
            log.warning("[%s] re-INVITE refused: %s", call.call_id, exc)
            call.reject(488, "Not Acceptable Here")
            return
        if conn is not None and offer_audio.port:
            leg._rtp.update_remote((conn.address, offer_audio.port))
        call.accept(answer)
        log.info("[%s] re-INVITE answered; media unchanged", call.call_id)

    def _on_bye(self, call: IncomingCall, _request: SipRequest) -> None:
        self._closed_by_peer(call.call_id, "caller")

    def _on_cancel(self, request: SipRequest, _addr: tuple[str, int]) -> None:
        self._closed_by_peer(request.call_id or "", "caller")

    def _closed_by_peer(self, call_id: str, reason: str) -> None:
        leg = self.legs.pop(call_id, None)
        if leg is None:
            return
        leg.end_reason = reason
        leg.events.put(HangUp(reason))
        leg.ended.set()
        self.loop.create_task(self._close_media(leg))
        log.info("[%s] ended by the peer (%s)", call_id, reason)

    async def _close_media(self, leg: Leg) -> None:
        if leg._rtp is not None:
            leg.media_to = time.monotonic()
            with contextlib.suppress(Exception):
                await leg._rtp.close()
            leg._rtp = None

    def end_leg(self, leg: Leg, reason: str) -> None:
        self.loop.create_task(self._end(leg, reason))

    async def _end(self, leg: Leg, reason: str) -> None:
        if self.legs.pop(leg.call_id, None) is None:
            return
        leg.end_reason = reason
        call = leg._call
        if call is not None and call.dialog.state == DialogState.CONFIRMED:
            bye = call.hangup()
            if bye is not None:
                await self._until_answered(bye, call)
        leg.events.put(HangUp(reason))
        leg.ended.set()
        await self._close_media(leg)

    # --- requests we send: retransmitted until answered (RFC 3261 §17.1.2) ---------------
    def on_response(self, resp: SipResponse) -> None:
        cseq = resp.cseq
        if cseq is None or (resp.status_code < 200 and cseq.method != "REFER"):
            return
        waiter = self._pending.get((resp.call_id or "", f"{cseq.seq} {cseq.method}"))
        if waiter is not None and not waiter.done():
            waiter.set_result(resp)

    async def _until_answered(self, request: SipRequest, call: IncomingCall) -> SipResponse | None:
        """Wait for the final answer to our request, sending it again over UDP (timer E)."""
        transport = call.transport
        assert transport is not None
        cseq = request.cseq
        key = (request.call_id or "", f"{cseq.seq} {cseq.method}" if cseq else "")
        waiter: asyncio.Future[SipResponse] = self.loop.create_future()
        self._pending[key] = waiter
        interval, waited = T1, 0.0
        try:
            while waited < TIMER_B:
                try:
                    return await asyncio.wait_for(asyncio.shield(waiter), interval)
                except TimeoutError:
                    waited += interval
                    interval = min(interval * 2, T2)
                    if not transport.reliable:
                        transport.send(request, call.source_addr)  # timer E: send again
            log.warning("[%s] %s never answered", request.call_id, request.method)
            return None
        finally:
            self._pending.pop(key, None)

    async def refer(self, leg: Leg, target: str, wait_s: float) -> int:
        """Blind transfer: REFER the caller to ``target`` and wait for the outcome (NOTIFY)."""
        call = leg._call
        if call is None or call.dialog.state != DialogState.CONFIRMED:
            raise ChannelError("the call is not established")
        host, port = call._signaling_addr()
        refer = call.dialog.create_request("REFER", via_host=host, via_port=port)
        refer.headers.set_single("Refer-To", f"<{target}>")
        refer.headers.set_single("Referred-By", f"<sip:ivr@{host}:{port}>")
        refer.headers.set_single("Contact", f"<sip:ivr@{host}:{port}>")
        assert call.transport is not None
        leg._refer_waiter = self.loop.create_future()
        call.transport.send(refer, call.source_addr)
        resp = await self._until_answered(refer, call)
        if resp is None or resp.status_code >= 300:
            return resp.status_code if resp is not None else 408
        try:
            return await asyncio.wait_for(leg._refer_waiter, wait_s)
        except TimeoutError:
            return 408

    def _on_transfer_progress(self, call_id: str, status: int, _reason: str) -> None:
        leg = self.legs.get(call_id)
        waiter = leg._refer_waiter if leg is not None else None
        if waiter is not None and status >= 200 and not waiter.done():
            waiter.set_result(status)

    def wait_calls_ended(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.legs and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.legs
