"""RTP and RFC 4733 telephone-events from strangers: a call on a real endpoint takes any
packet sent to its media port and its keys and audio keep working; the parsers and the
in-band tone detector take anything."""

from __future__ import annotations

import logging
import queue
import re
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from aiortp.packet import RtpPacket
from hypothesis import example, given
from hypothesis import strategies as st

from ivr.channels.base import Key
from ivr.channels.sip_media import G711, KeyEvents
from ivr.channels.sip_stack import Endpoint, EndpointConfig, Leg
from ivr.speech.dtmf import ToneDetector
from tests.fuzz.test_fuzz_sip import Errors
from tests.sip.peers import free_port, raw_sdp, request, status_of

EVENTS = "0123456789*#ABCD"


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([2, 2, 2, 0, 1, 3]))
    padding, extension = draw(st.booleans()), draw(st.booleans())
    csrc = draw(st.integers(0, 15))
    marker = draw(st.booleans())
    pt = draw(st.sampled_from([0, 8, 9, 13, 101, 101, 127, 72, 96]))
    first = (version << 6) | (padding << 5) | (extension << 4) | csrc
    head = struct.pack(
        "!BBHII",
        first,
        (marker << 7) | pt,
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
    )
    if pt == 101 and draw(st.booleans()):  # a telephone-event, well formed or not
        payload = struct.pack(
            "!BBH",
            draw(st.integers(0, 255)),
            (draw(st.booleans()) << 7) | draw(st.integers(0, 63)),
            draw(st.integers(0, 0xFFFF)),
        ) + draw(st.binary(max_size=8))
    else:
        payload = draw(st.binary(max_size=400))
    cut = draw(st.integers(0, len(head) + len(payload)))
    whole = head + payload
    return whole if draw(st.booleans()) else whole[:cut]


@given(st.one_of(rtp_packets(), st.binary(max_size=200)))
@example(b"\x80\xe5\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x0b")  # event cut after 1 byte
def test_rtp_and_events_parse_or_are_refused(data: bytes) -> None:
    keys: list[str] = []
    events = KeyEvents(keys.append)
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    events.handle_packet(packet)  # never raises: a bad event is ignored like a bad packet
    assert all(k in "0123456789*#" for k in keys)
    for law in ("PCMU", "PCMA"):
        pcm = G711(law).decode(packet.payload)
        assert len(pcm) == 2 * len(packet.payload)


@given(st.lists(st.integers(-32768, 32767), min_size=160, max_size=160), st.integers(0, 30))
def test_tone_detector_takes_any_frame(samples: list[int], repeat: int) -> None:
    detector = ToneDetector(8000)
    frame = np.array(samples, dtype=np.int16)
    for _ in range(repeat + 1):
        key = detector.push(frame)
        assert key is None or key in EVENTS


# --- a live call ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def call() -> Iterator[tuple[Endpoint, Leg, socket.socket, int, Errors, list[Any]]]:
    legs: queue.Queue[Leg] = queue.Queue()

    def on_call(leg: Leg) -> bool:
        legs.put(leg)
        return True

    ep = Endpoint(
        EndpointConfig(host="127.0.0.1", port=free_port(), tcp=False, ring_s=0.0), on_call
    )
    errors = Errors()
    logging.getLogger().addHandler(errors)
    ep.start()
    loop_errors: list[Any] = []
    ep.loop.set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))

    class Client:
        port = sip.getsockname()[1]

    invite = request(
        "INVITE",
        ep.config.port,
        Client,  # type: ignore[arg-type]
        call_id="fuzz-media",
        branch="z9hG4bKfm1",
        body=raw_sdp(rtp.getsockname()[1]),
    )
    sip.sendto(invite.encode(), ("127.0.0.1", ep.config.port))
    sip.settimeout(10)
    answer = ""
    while status_of(answer) != 200:
        answer = sip.recv(65535).decode()
    media_port = int(re.search(r"m=audio (\d+)", answer).group(1))  # type: ignore[union-attr]
    leg = legs.get(timeout=10)
    try:
        yield ep, leg, rtp, media_port, errors, loop_errors
    finally:  # the caller hangs up (the endpoint closes the media), then the endpoint stops
        to_tag = re.search(r"(?im)^To:.*;tag=([^;\s]+)", answer)
        for method, seq in (("ACK", 1), ("BYE", 2)):
            sip.sendto(
                request(
                    method,
                    ep.config.port,
                    Client,  # type: ignore[arg-type]
                    call_id="fuzz-media",
                    branch=f"z9hG4bKfm{method}",
                    cseq=seq,
                    to_tag=to_tag.group(1) if to_tag else "",
                ).encode(),
                ("127.0.0.1", ep.config.port),
            )
        leg.ended.wait(10)
        time.sleep(0.5)  # the media sockets close on the endpoint's loop
        ep.stop()
        sip.close()
        rtp.close()
        logging.getLogger().removeHandler(errors)


def _drain(leg: Leg) -> list[Any]:
    out = []
    while True:
        try:
            out.append(leg.events.get_nowait())
        except queue.Empty:
            return out


def _press(rtp: socket.socket, port: int, digit: str, ts: int) -> None:
    code = "0123456789*#".index(digit)
    for seq, (end, duration) in enumerate([(0, 160), (0, 320), (1, 480), (1, 480), (1, 480)]):
        payload = struct.pack("!BBH", code, (end << 7) | 10, duration)
        head = struct.pack("!BBHII", 0x80, 101 | (0x80 if seq == 0 else 0), 60000 + seq, ts, 7)
        rtp.sendto(head + payload, ("127.0.0.1", port))


@given(packets=st.lists(st.one_of(rtp_packets(), st.binary(max_size=300)), max_size=20))
def test_call_survives_any_rtp(call: Any, packets: list[bytes]) -> None:
    ep, leg, rtp, port, errors, loop_errors = call
    for packet in packets:
        rtp.sendto(packet, ("127.0.0.1", port))
    assert leg.call_id in ep.legs and not leg.ended.is_set()
    assert loop_errors == [] and errors.records == []


def test_keys_and_audio_still_work_after_the_fuzz(call: Any) -> None:
    _, leg, rtp, port, errors, loop_errors = call
    _drain(leg)
    # The fuzz sends a few thousand packets at once; on a loaded machine the endpoint's socket
    # buffer may still be full of them when the key is pressed, and UDP drops what does not
    # fit. A caller whose tone was lost presses again: so does this one, every 2 s, each
    # time a new key (a new timestamp). Keys that no longer work are never heard.
    keys: list[str] = []
    presses = 0
    deadline = next_press = time.monotonic()
    deadline += 20
    while time.monotonic() < deadline and "7" not in keys:
        if time.monotonic() >= next_press:
            _press(rtp, port, "7", (int(time.time()) + 1000 * presses) & 0xFFFFFFF)
            presses += 1
            next_press += 2
        keys += [e.key for e in _drain(leg) if isinstance(e, Key)]
        time.sleep(0.05)
    assert "7" in keys, (presses, loop_errors, errors.records)
    rtp.settimeout(5)
    assert len(rtp.recv(2048)) >= 12  # the IVR's 20 ms packets keep coming
    assert loop_errors == [] and errors.records == []
