"""The SIP adapter's own logic: caller ID, dialled number, codec choice, RFC 4733 keys, the
received audio of a late media clock."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest
from aiosipua import SdpNegotiationError, SipMessage
from aiosipua.sdp import parse_sdp

from ivr.channels.base import Frame
from ivr.channels.sip_media import KeyEvents, choose_codec
from ivr.channels.sip_stack import RX_JITTER_FRAMES, Leg, caller_number, dialled_number


def invite(*headers: str, uri: str = "sip:4008001001@10.0.0.1:5080") -> SipMessage:
    text = (
        f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n"
        "To: <sip:ivr@10.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
        + "".join(h + "\r\n" for h in headers)
        + "Content-Length: 0\r\n\r\n"
    )
    return SipMessage.parse(text)


def test_caller_id_prefers_the_asserted_identity() -> None:
    from_only = invite('From: "Wang" <sip:+86 138-0013-8000@pbx>;tag=1')
    assert caller_number(from_only) == "8613800138000"  # type: ignore[arg-type]
    asserted = invite(
        "From: <sip:anonymous@anonymous.invalid>;tag=1", "P-Asserted-Identity: <tel:+13800138000>"
    )
    assert caller_number(asserted) == "13800138000"  # type: ignore[arg-type]
    assert caller_number(invite("From: <sip:anonymous@x>;tag=1")) is None  # type: ignore[arg-type]
    assert dialled_number(invite("From: <sip:a@b>;tag=1")) == "4008001001"  # type: ignore[arg-type]


def offer(formats: str, rtpmaps: str) -> object:
    return parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP {formats}\r\n{rtpmaps}"
    )


def test_codec_choice() -> None:
    assert choose_codec(offer("8 0 9 101", "a=rtpmap:9 G722/8000\r\n")) == 9  # wideband first
    assert choose_codec(offer("8 0 101", "")) == 8  # then the caller's order
    with pytest.raises(SdpNegotiationError, match="no common codec"):
        choose_codec(offer("18", "a=rtpmap:18 G729/8000\r\n"))


def event(key: int, end: bool, ts: int) -> SimpleNamespace:
    payload = struct.pack("!BBH", key, (0x80 if end else 0) | 10, 800)
    return SimpleNamespace(payload=payload, timestamp=ts)


def test_keys_from_telephone_events() -> None:
    got: list[str] = []
    keys = KeyEvents(got.append)
    for ts, key in ((100, 1), (100, 1)):  # the same recording replayed: same timestamps
        for end in (False, False, True, True, True):  # three copies of the end packet
            keys.handle_packet(event(key, end, ts))
    keys.handle_packet(event(11, True, 900))
    keys.handle_packet(SimpleNamespace(payload=b"\x01", timestamp=950))  # malformed: ignored
    assert got == ["1", "1", "#"]


def test_in_band_keypad_tones() -> None:
    """Callers whose phone sends tones in the audio (no telephone-events) still key in."""
    import numpy as np

    from ivr.qa.synth import caller_speech
    from ivr.speech.dtmf import keys_in as detect
    from ivr.speech.dtmf import tone

    for rate in (8000, 16000):
        gap = np.zeros(rate // 10, np.int16)
        keys = "1234567890*#"
        keyed = np.concatenate([np.concatenate([tone(k, rate, 80, 2000), gap]) for k in keys])
        assert detect(keyed, rate) == keys
        twice = np.concatenate([tone("5", rate, 80), gap, tone("5", rate, 80), gap])
        assert detect(twice, rate) == "55"
    speech = caller_speech("one two three four five six seven eight nine zero").to_rate(8000)
    assert detect(speech.samples, 8000) == ""  # spoken digits are not tones


def received(leg: Leg) -> list[np.ndarray]:
    frames = []
    while not leg.events.empty():
        event = leg.events.get_nowait()
        assert isinstance(event, Frame)
        frames.append(event.samples)
    return frames


def test_a_late_media_clock_hands_on_every_received_frame() -> None:
    """Under load the 20 ms clock runs late: the audio that arrived meanwhile (here 1.5 s of a
    caller's answer) reaches the dialog whole and in order, none of it dropped."""
    leg = Leg("c", None, None, ("127.0.0.1", 4000), "PCMU", False, endpoint=None)  # type: ignore[arg-type]
    n = leg.frame
    speech = np.arange(75 * n, dtype=np.int16)  # 75 frames, each one different
    for i in range(0, len(speech), n):  # every packet arrives; no tick runs meanwhile
        leg._on_audio(speech[i : i + n].astype("<i2").tobytes(), i)
    leg._tick()  # the clock's next tick: the backlog past the jitter allowance
    late = received(leg)
    assert len(late) == 75 - RX_JITTER_FRAMES + 1
    for _ in range(RX_JITTER_FRAMES - 1 + 2):
        leg._tick()  # the rest, one a tick, then two of silence (nothing more arrived)
    frames = late + received(leg)
    heard = np.concatenate(frames[:75])
    assert np.array_equal(heard, speech)
    assert not np.any(np.concatenate(frames[75:])) and leg.rx_underruns == 2


def test_a_call_knows_how_much_of_its_audio_went_out_on_time() -> None:
    """One frame is due every 20 ms of media: a clock that fell behind under load sent fewer,
    and the call's record (its ``call_ended`` log) says how many."""
    leg = Leg("c", None, None, ("127.0.0.1", 4000), "PCMU", False, endpoint=None)  # type: ignore[arg-type]
    assert leg.audio_on_time() is None  # no media yet
    leg.media_from, leg.media_to = 100.0, 110.0  # ten seconds: 500 frames due
    leg.tx_frames = 500
    assert leg.audio_on_time() == 1.0
    leg.tx_frames = 400  # a clock that ran at four fifths of its speed
    assert leg.audio_on_time() == pytest.approx(0.8)
    leg.media_to = 100.5  # half a second of media tells nothing yet
    assert leg.audio_on_time() is None
