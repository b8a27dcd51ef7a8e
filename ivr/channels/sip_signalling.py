"""SIP signalling around the library: transports, access, authentication, registrations.

The policies :mod:`ivr.channels.sip_stack` applies to each request before the library's
dialog handling, and the fixes it needs (see that module's docstring): blocked sources are
dropped before parsing; initial requests from outside the trusted networks are throttled and
authenticated (:mod:`ivr.channels.sip_guard`); REGISTER is answered; a retransmitted INVITE
stays one call; Record-Route is copied into our responses; TCP replies go back on the
caller's connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

from aiosipua import (
    IncomingCall,
    SipRequest,
    SipResponse,
    SipUAS,
    TcpSipTransport,
    UdpSipTransport,
)
from aiosipua.dialog import DialogState

from ivr.channels.sip_guard import SourceGuard, Verdict
from ivr.services.privacy import scrub

if TYPE_CHECKING:
    from ivr.channels.sip_stack import Endpoint

log = logging.getLogger(__name__)

USER_AGENT: Final = "ivr"
REGISTER_MAX_S: Final = 3600
_CALL_ID: Final = re.compile(rb"(?im)^(?:call-id|i)\s*:\s*(\S+)")
_TO_TAG: Final = re.compile(r";\s*tag\s*=", re.IGNORECASE)


class Udp(UdpSipTransport):
    """The library's UDP transport, bound without its protocol's start-up assertion
    (which fails, harmlessly but loudly, on Python 3.11's datagram transport)."""

    guard: SourceGuard | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        owner = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                source = (str(addr[0]), int(addr[1]))
                if owner.guard is not None and owner.guard.blocked(source):
                    return  # a blocked source: dropped before parsing
                owner._dispatch(data, source)

            def error_received(self, exc: Exception) -> None:
                log.debug("SIP socket error: %s", exc)

        transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=self.local_addr)
        self._udp_transport = transport


class Tcp(TcpSipTransport):
    """The library's TCP transport; replies go back on the connection the call came in on
    (RFC 3261 §18.2.2), also when the peer's Via names another port."""

    guard: SourceGuard | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_call: dict[str, tuple[str, int]] = {}

    def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.guard is not None and self.guard.blocked(addr):
            return
        match = _CALL_ID.search(data)
        if match:
            self._by_call[match.group(1).decode(errors="replace")] = addr
            if len(self._by_call) > 10000:  # forget the oldest calls
                for key in list(self._by_call)[:5000]:
                    del self._by_call[key]
        super()._dispatch(data, addr)

    def send(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        if addr not in self._connections:
            addr = self._by_call.get(message.call_id or "", addr)
        try:
            super().send(message, addr)
        except RuntimeError as exc:  # the peer closed its connection
            log.warning("SIP over TCP: %s", exc)


class Uas(SipUAS):
    """The library's UAS with the fixes and policies listed in the module docstring."""

    endpoint: Endpoint

    def _handle_request(self, request: SipRequest, addr: tuple[str, int]) -> None:
        method = request.method.upper()
        initial = method not in ("ACK", "CANCEL") and not _TO_TAG.search(
            request.headers.get_first("to") or ""
        )
        if initial and not self.endpoint.allowed(addr) and not self._admit(request, addr):
            return
        if method == "REGISTER" and initial:
            self._registered(request, addr)
            return
        super()._handle_request(request, addr)

    def _admit(self, request: SipRequest, addr: tuple[str, int]) -> bool:
        """An initial request from outside the trusted networks: throttle, authenticate."""
        config = self.endpoint.config
        method = request.method.upper()
        if config.guard is not None and not config.guard.admit(addr):
            return False  # slowed or blocked: no answer at all
        if config.auth is None:
            if method in ("INVITE", "REGISTER"):
                log.warning("%s from %s:%d refused: not an allowed peer", method, *addr)
                self._send_error(request, 403, "Forbidden")
                return False
            return True  # OPTIONS and the like, as before
        result = config.auth.check(
            method,
            request.uri,
            request.headers.get_first("authorization")
            or request.headers.get_first("proxy-authorization"),
        )
        if result.verdict is Verdict.OK:
            log.debug("%s from %s:%d: authenticated as %r", method, *addr, scrub(result.user or ""))
            return True
        if result.verdict is Verdict.FAILED:
            log.warning(
                "%s from %s:%d refused: authentication failed for %r (%s)",
                method,
                *addr,
                scrub((result.user or "")[:40]),  # a user name may be a phone number
                result.reason,
            )
            if config.guard is not None:
                config.guard.failed(addr)
            self._reply(request, 403, "Forbidden")
            return False
        stale = result.verdict is Verdict.STALE
        self._reply(
            request,
            401,
            "Unauthorized",
            [("WWW-Authenticate", c) for c in config.auth.challenges(stale=stale)],
        )
        return False

    def _registered(self, request: SipRequest, addr: tuple[str, int]) -> None:
        """A REGISTER that passed: 200 with its bindings for at most an hour (the IVR
        places no calls to phones, so the binding itself is not kept)."""
        try:
            asked = int(request.headers.get_first("expires") or REGISTER_MAX_S)
        except ValueError:
            asked = REGISTER_MAX_S
        expires = max(0, min(asked, REGISTER_MAX_S))
        headers = [("Expires", str(expires))]
        contact = request.headers.get_first("contact")
        if contact and expires:
            headers.append(("Contact", f"{contact.split(';expires=')[0]};expires={expires}"))
        self._reply(request, 200, "OK", headers)
        log.info("registration from %s:%d accepted for %d s", *addr, expires)

    def _reply(
        self,
        request: SipRequest,
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        resp = SipResponse(status_code=status, reason_phrase=reason)
        for v in request.headers.get("via"):
            resp.headers.append("Via", v)
        for name in ("from", "call-id", "cseq"):
            value = request.headers.get_first(name)
            if value:
                resp.headers.set_single(name.title().replace("Call-Id", "Call-ID"), value)
        to_val = request.headers.get_first("to")
        if to_val:
            resp.headers.set_single("To", f"{to_val};tag={secrets.token_hex(6)}")
        for name, value in headers or []:
            resp.headers.append(name, value)
        resp.headers.set_single("User-Agent", USER_AGENT)
        try:
            self.transport.send_reply(resp)
        except (ValueError, RuntimeError, OSError) as exc:
            log.debug("no reply to %s: %s", request.method, exc)

    def _handle_invite(self, request: SipRequest, addr: tuple[str, int]) -> None:
        call_id = request.call_id or ""
        existing = self._calls.get(call_id)
        if existing is not None and existing.dialog.state != DialogState.CONFIRMED:
            branch = request.via[0].branch if request.via else None
            first = existing.invite.via[0].branch if existing.invite.via else None
            if branch == first:
                existing.trying()  # a retransmission of the INVITE we are answering
                return
        if (
            existing is not None
            and existing.dialog.state == DialogState.CONFIRMED
            and request.via
            and existing.invite.via
            and request.via[0].branch == existing.invite.via[0].branch
        ):
            return  # the first INVITE again after our 200: our 200 is being retransmitted
        super()._handle_invite(request, addr)

    def _on_message(self, msg: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        """The network boundary: a message that breaks a parser past the first line (an SDP
        port that is not a number, ...) gets 400 and one log line; it never escapes into
        the transport or leaves its sender waiting."""
        try:
            if isinstance(msg, SipResponse):
                self.endpoint.on_response(msg)
                return
            super()._on_message(msg, addr)
        except Exception as exc:  # a malformed message from outside: refuse it, carry on
            log.warning(
                "malformed %s from %s:%d: %s: %s",
                msg.method if isinstance(msg, SipRequest) else "response",
                *addr,
                type(exc).__name__,
                str(exc)[:200],
            )
            if isinstance(msg, SipRequest) and msg.method.upper() != "ACK":
                self._reply(msg, 400, "Bad Request")


def copy_record_route(call: IncomingCall) -> None:
    """Make the call's responses carry the INVITE's Record-Route (RFC 3261 §12.1.1)."""
    routes = call.invite.headers.get("record-route")
    if not routes:
        return
    call.dialog.route_set = list(routes)  # the UAS keeps the order as received
    original = call.dialog.create_response

    def create_response(request: SipRequest, status: int, reason: str, **kw: Any) -> SipResponse:
        resp = original(request, status, reason, **kw)
        if request is call.invite and 100 < status < 300:
            for route in routes:
                resp.headers.append("Record-Route", route)
        return resp

    call.dialog.create_response = create_response  # type: ignore[method-assign,assignment]
