"""The RFC behaviour `ivr serve` depends on, checked message by message from a raw UDP peer:
one call for a retransmitted INVITE, BYE retransmitted until answered, Record-Route kept,
RTP every 20 ms while the IVR only listens, G.711 against the reference, bad input refused."""

from __future__ import annotations

import itertools
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from tests.sip.peers import Ivr, RawSip, header, raw_sdp, request, start_ivr, status_of


@pytest.fixture
def ivr(ivr_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    server = start_ivr(ivr_home, tmp_path)
    yield server
    server.stop()


class RawCall:
    """One call placed by hand: INVITE, the 200's SDP, ACK, RTP to and from the IVR."""

    def __init__(self, ivr: Ivr, call_id: str, *, extra: str = "", formats: str = "0 101") -> None:
        self.ivr = ivr
        self.sip = RawSip()
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.call_id = call_id
        self.branch = f"z9hG4bK{call_id}"
        self.invite = request(
            "INVITE",
            ivr.port,
            self.sip,
            call_id=call_id,
            branch=self.branch,
            body=raw_sdp(self.rtp.getsockname()[1], formats),
            extra=extra,
        )
        self.ok: str | None = None
        self.seq = 0

    def place(self, times: int = 1) -> list[str]:
        for _ in range(times):
            self.sip.send(self.invite, self.ivr.port)
        replies: list[str] = []
        deadline = time.monotonic() + 5
        while self.ok is None and time.monotonic() < deadline:
            for message in self.sip.recv_all(0.3):
                replies.append(message)
                if status_of(message) == 200 and "INVITE" in header(message, "CSeq")[0]:
                    self.ok = message
        assert self.ok is not None, replies
        to_tag = header(self.ok, "To")[0].split("tag=")[1]
        self.to_tag = to_tag
        ack = request(
            "ACK",
            self.ivr.port,
            self.sip,
            call_id=self.call_id,
            branch=self.branch + "a",
            to_tag=to_tag,
        )
        self.sip.send(ack, self.ivr.port)
        port = int(
            next(line for line in self.ok.splitlines() if line.startswith("m=audio")).split()[1]
        )
        self.ivr_rtp = ("127.0.0.1", port)
        return replies

    def key(self, digit: str) -> None:
        event = "0123456789*#".index(digit)
        ts = 1000 + self.seq * 160
        for i in range(6):
            end = i >= 3
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, 160 * (i + 1))
            head = struct.pack("!BBHII", 0x80, 101 | (0x80 if i == 0 else 0), self.seq, ts, 1234)
            self.rtp.sendto(head + payload, self.ivr_rtp)
            self.seq += 1
            time.sleep(0.02)

    def rtp_packets(self, seconds: float) -> list[tuple[float, bytes]]:
        got: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rtp.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = self.rtp.recvfrom(2048)
            except TimeoutError:
                break
            got.append((time.monotonic(), data))
        return got

    def hang_up(self) -> None:
        """The caller's BYE (the IVR answers it and ends the call at once)."""
        assert self.ok is not None
        bye = request(
            "BYE",
            self.ivr.port,
            self.sip,
            call_id=self.call_id,
            branch=self.branch + "b",
            cseq=2,
            to_tag=self.to_tag,
        )
        self.sip.send(bye, self.ivr.port)
        assert any(status_of(m) == 200 for m in self.sip.recv_all(2.0)), "BYE not answered"

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()


def test_retransmitted_invite_is_one_call(ivr: Ivr) -> None:
    call = RawCall(ivr, "retrans-1")
    try:
        call.place(times=3)  # the same INVITE three times, as a lossy network delivers it
        time.sleep(1.0)
        call.key("0")  # the caller asks for an agent: the call ends with the IVR's BYE
        bye = wait_for(call.sip, "BYE", 40)
        call.sip.send(ok_for(bye), ivr.port)
    finally:
        call.close()
    rows = ivr.wait_records(1)
    assert len(rows) == 1 and rows[0]["outcome"] == "transferred"


def test_unanswered_bye_is_sent_again(ivr: Ivr) -> None:
    call = RawCall(ivr, "bye-1")
    try:
        call.place()
        time.sleep(0.5)
        call.key("0")
        first = wait_for(call.sip, "BYE", 40)
        again = wait_for(call.sip, "BYE", 5)  # not answered: timer E sends it again
        assert header(again, "CSeq") == header(first, "CSeq")
        assert header(again, "Call-ID") == ["bye-1"]
        call.sip.recv_all(0.05)  # those already here (a busy machine reads them late)
        call.sip.send(ok_for(again), ivr.port)
        # one more may cross our answer on the wire (sent before the IVR read it); without the
        # answer taken, timer E would send at least two more in the next 10 s (1 s, 2 s, 4 s)
        later = [m for m in call.sip.recv_all(10.0) if m.startswith("BYE")]
        assert len(later) <= 1, later
    finally:
        call.close()
    (row,) = ivr.wait_records(1)
    assert row["outcome"] == "transferred"


def test_record_route_is_kept(ivr: Ivr) -> None:
    routes = "Record-Route: <sip:127.0.0.1:5999;lr;ftag=a>\r\nRecord-Route: <sip:10.0.0.9:5060;lr>"
    call = RawCall(ivr, "rr-1", extra=routes)
    try:
        call.place()
        assert call.ok is not None
        assert header(call.ok, "Record-Route") == [
            "<sip:127.0.0.1:5999;lr;ftag=a>",
            "<sip:10.0.0.9:5060;lr>",
        ]
        time.sleep(0.5)
        call.key("0")
        bye = wait_for(call.sip, "BYE", 40)
        # in-dialog requests follow the route set, in order
        assert header(bye, "Route") == ["<sip:127.0.0.1:5999;lr;ftag=a>", "<sip:10.0.0.9:5060;lr>"]
        call.sip.send(ok_for(bye), ivr.port)
    finally:
        call.close()


def test_rtp_flows_every_20_ms_while_listening(ivr: Ivr) -> None:
    call = RawCall(ivr, "rtp-1")
    try:
        call.place()
        packets = call.rtp_packets(30.0)  # welcome, the menu prompt, then listening in silence
        call.hang_up()  # the server stops at once, not after its grace for live calls
    finally:
        call.close()
    (row,) = ivr.wait_records(1)
    assert row["outcome"] == "abandoned"
    assert len(packets) > 30.0 / 0.02 * 0.9
    headers = [struct.unpack("!BBHI", data[:8]) for _, data in packets]
    seqs = [h[2] for h in headers]
    stamps = [h[3] for h in headers]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert all((b - a) % 2**32 == 160 for a, b in itertools.pairwise(stamps))
    gaps = np.diff([t for t, _ in packets])
    assert np.median(gaps) == pytest.approx(0.02, abs=0.004)
    # while the IVR listens (8 s before the first reprompt) it still sends: silence packets
    silent = [set(data[12:]) <= {0xFF, 0x7F} and len(data) == 172 for _, data in packets]
    longest = run = 0
    for quiet in silent:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    assert longest * 0.02 > 5.0


def test_bad_and_hostile_messages(ivr: Ivr) -> None:
    client = RawSip()
    try:
        # garbage, and an empty datagram: dropped without a crash
        client.send(b"\x00\x01garbage\xff" * 20, ivr.port)
        client.send(b"", ivr.port)
        # a request without Call-ID and CSeq: 400
        client.send(
            f"INVITE sip:ivr@127.0.0.1:{ivr.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bKbad1\r\n"
            "From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
            ivr.port,
        )
        assert [status_of(m) for m in client.recv_all(1.0)] == [400]
        # huge headers: answered or dropped, never a crash
        huge = request(
            "OPTIONS",
            ivr.port,
            client,
            call_id="huge",
            branch="z9hG4bKhuge",
            extra="X-Filler: " + "a" * 30000,
        )
        client.send(huge, ivr.port)
        client.recv_all(1.0)
        # an offer with only a video stream, and one with an unknown codec: 488
        for n, sdp in enumerate(
            (
                raw_sdp(40000).replace("m=audio", "m=video"),
                raw_sdp(40000, "18", "a=rtpmap:18 G729/8000\r\n"),
            )
        ):
            bad = request(
                "INVITE", ivr.port, client, call_id=f"sdp-{n}", branch=f"z9hG4bKs{n}", body=sdp
            )
            client.send(bad, ivr.port)
            assert 488 in [status_of(m) for m in client.recv_all(1.5)]
        # a BYE for no call: 481; an unknown method: 405
        client.send(
            request("BYE", ivr.port, client, call_id="nothing", branch="z9hG4bKb"), ivr.port
        )
        client.send(request("PUBLISH", ivr.port, client, call_id="p", branch="z9hG4bKp"), ivr.port)
        assert sorted(status_of(m) for m in client.recv_all(1.0)) == [405, 481]
        # OPTIONS (a proxy's health probe): 200 with what we allow
        client.send(request("OPTIONS", ivr.port, client, call_id="o", branch="z9hG4bKo"), ivr.port)
        (ok,) = client.recv_all(1.0)
        assert status_of(ok) == 200 and "INVITE" in header(ok, "Allow")[0]
    finally:
        client.close()
    # and a normal call still works
    call = RawCall(ivr, "after-1")
    try:
        call.place()
        assert len(call.rtp_packets(2.0)) > 80
        call.sip.send(
            request(
                "BYE",
                ivr.port,
                call.sip,
                call_id="after-1",
                branch="z9hG4bKab",
                cseq=2,
                to_tag=call.to_tag,
            ),
            ivr.port,
        )
    finally:
        call.close()
    rows = ivr.wait_records(1)
    assert rows[-1]["outcome"] == "abandoned"
    assert ivr.proc.poll() is None


def test_peers_outside_the_allowed_networks_get_403(ivr_home: Path, tmp_path: Path) -> None:
    server = start_ivr(ivr_home, tmp_path, "--allow", "10.9.9.0/24")
    client = RawSip()
    try:
        invite = request(
            "INVITE", server.port, client, call_id="acl-1", branch="z9hG4bKacl", body=raw_sdp(40000)
        )
        client.send(invite, server.port)
        assert [status_of(m) for m in client.recv_all(1.0)] == [403]
        assert server.records() == []
        assert "not an allowed peer" in server.log.read_text()
    finally:
        client.close()
        server.stop()


def wait_for(sip: RawSip, method: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in sip.recv_all(min(1.0, deadline - time.monotonic())):
            if message.startswith(method + " "):
                return message
    raise AssertionError(f"no {method} within {seconds} s")


def ok_for(req: str) -> str:
    keep = [
        line
        for line in req.split("\r\n")
        if line.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")
    ]
    return "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_g711_matches_the_reference(law: str) -> None:
    import warnings

    from ivr.channels.sip_media import G711

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # the reference G.711 of the standard library (Python 3.11/3.12)

    codec = G711(law)
    encode, decode = (
        (audioop.lin2ulaw, audioop.ulaw2lin)
        if law == "PCMU"
        else (audioop.lin2alaw, audioop.alaw2lin)
    )
    every_sample = np.arange(-32768, 32768).astype("<i2").tobytes()  # bit-exact, every value
    assert codec.encode(every_sample) == encode(every_sample, 2)
    every_code = bytes(range(256))
    assert codec.decode(every_code) == decode(every_code, 2)

    t = np.arange(8000) / 8000
    pcm = np.sin(2 * np.pi * 440 * t) * 12000 + np.sin(2 * np.pi * 1300 * t) * 4000
    through = codec.decode(codec.encode(pcm.astype("<i2").tobytes()))
    ours = np.frombuffer(through, dtype="<i2").astype(np.float64)
    assert np.corrcoef(ours, pcm)[0, 1] > 0.99  # and the same polarity as the input


def test_jittered_reordered_audio_and_in_band_keys(ivr: Ivr) -> None:
    """A phone that sends keypad tones inside the audio (no telephone-events), over a network
    that delays and reorders packets: the jitter buffer puts the audio back in order and the
    tone detector hears the key ("0": the caller asks for an agent)."""
    import random

    from ivr.speech.audio import ulaw_encode
    from ivr.speech.dtmf import tone

    call = RawCall(ivr, "inband-1", formats="0")
    rng = random.Random(7)
    try:
        call.place()
        time.sleep(1.0)
        audio = np.concatenate([tone("0", 8000, 200, 6000), np.zeros(8000, np.int16)])
        frames = [audio[i : i + 160] for i in range(0, len(audio), 160)]
        packets = []
        for n, frame in enumerate(frames):
            head = struct.pack("!BBHII", 0x80, 0, 500 + n, 8000 + n * 160, 4321)
            packets.append(head + ulaw_encode(frame))
        for i in range(0, len(packets) - 1, 2):  # every pair arrives swapped
            packets[i], packets[i + 1] = packets[i + 1], packets[i]
        start = time.monotonic()
        for n, packet in enumerate(packets):
            due = start + n * 0.02 + rng.uniform(0, 0.03)  # up to 30 ms late
            time.sleep(max(0.0, due - time.monotonic()))
            call.rtp.sendto(packet, call.ivr_rtp)
        bye = wait_for(call.sip, "BYE", 60)
        call.sip.send(ok_for(bye), ivr.port)
    finally:
        call.close()
    (row,) = ivr.wait_records(1)
    assert row["outcome"] == "transferred" and row["transfer_reason"] == "caller_request"


def test_bad_packets_in_one_call_leave_the_others_alone(ivr: Ivr) -> None:
    import os

    hostile = RawCall(ivr, "hostile-1")
    good = RawCall(ivr, "good-1")
    try:
        hostile.place()
        good.place()
        junk = [
            os.urandom(3),  # too short for RTP
            os.urandom(200),  # random bytes
            struct.pack("!BBHII", 0x00, 0, 1, 0, 99) + b"x" * 160,  # wrong RTP version
            struct.pack("!BBHII", 0x80, 101, 2, 160, 99) + b"\x01",  # cut telephone-event
            struct.pack("!BBHII", 0x80, 55, 3, 320, 99) + b"\xff" * 160,  # unknown payload
            struct.pack("!BBHII", 0x80, 0, 4, 480, 99) + b"\xff" * 5000,  # oversized
        ]
        for _ in range(20):
            for packet in junk:
                hostile.rtp.sendto(packet, hostile.ivr_rtp)
        good.key("0")  # the other caller goes on: asks for an agent, the IVR hangs up
        bye = wait_for(good.sip, "BYE", 40)
        good.sip.send(ok_for(bye), ivr.port)
        assert len(hostile.rtp_packets(1.0)) > 40  # the hostile call is still served
        hostile.sip.send(
            request(
                "BYE",
                ivr.port,
                hostile.sip,
                call_id="hostile-1",
                branch="z9hG4bKhb",
                cseq=2,
                to_tag=hostile.to_tag,
            ),
            ivr.port,
        )
        rows = ivr.wait_records(2)
    finally:
        hostile.close()
        good.close()
    assert sorted(str(r["outcome"]) for r in rows) == ["abandoned", "transferred"]
    assert ivr.proc.poll() is None
