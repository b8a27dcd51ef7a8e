"""Memory stays bounded whatever arrives: INVITEs refused and never acknowledged (as a
scanner sends them) are forgotten after timer H; the flood guard's tables are bounded (see
tests/unit/test_sip_guard.py)."""

from __future__ import annotations

import socket
import time

from ivr.channels.sip_stack import Endpoint, EndpointConfig
from tests.sip.peers import free_port, raw_sdp


def test_refused_invites_never_acknowledged_are_forgotten() -> None:
    ep = Endpoint(
        EndpointConfig(host="127.0.0.1", port=free_port(), tcp=False, release_after_s=0.5),
        lambda leg: False,  # every call over the limit: 503
    )
    ep.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    me = sock.getsockname()[1]
    try:
        n = 60
        for i in range(n):
            body = raw_sdp(40000)
            sock.sendto(
                (
                    f"INVITE sip:ivr@127.0.0.1:{ep.config.port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKscan{i};rport\r\n"
                    f"From: <sip:scan@127.0.0.1:{me}>;tag=s{i}\r\n"
                    f"To: <sip:ivr@127.0.0.1:{ep.config.port}>\r\nCall-ID: scan-{i}\r\n"
                    "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n{body}"
                ).encode(),
                ("127.0.0.1", ep.config.port),
            )
            if i % 10 == 9:
                time.sleep(0.2)  # in bursts
        sock.settimeout(3)
        refused: set[str] = set()
        try:
            while len(refused) < n:
                data = sock.recv(65535).decode(errors="replace")
                if data.startswith("SIP/2.0 503"):
                    refused.add(next(x for x in data.split("\r\n") if x.startswith("Call-ID")))
        except TimeoutError:
            pass
        assert len(refused) > n // 2
        held = sum(len(u._calls) for u in ep._servers)
        assert held > 0  # the refused calls are held for a while (the caller may ACK)
        # never ACKed: each refused call is released after timer H (here 0.5 s)
        deadline = time.monotonic() + 30
        while sum(len(u._calls) for u in ep._servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(len(u._calls) for u in ep._servers) == 0
    finally:
        sock.close()
        ep.stop()
