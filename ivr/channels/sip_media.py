"""RTP media for `ivr serve`: the codec a call is answered with, G.711 with the project's
bit-exact tables, and RFC 4733 telephone-events turned into keys. Used by
:mod:`ivr.channels.sip_stack`, which owns the calls' sessions and their 20 ms clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
from aiortp.codecs.base import Codec as RtpCodec
from aiortp.dtmf import DtmfEvent
from aiosipua import SdpNegotiationError

from ivr.speech.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

RATE: Final = 8000
FRAME: Final = 160  # 20 ms at 8 kHz
# payload type -> (codec, audio rate); G.722 first: wideband is recognised far better
CODECS: Final = {9: ("G722", 16000), 0: ("PCMU", RATE), 8: ("PCMA", RATE)}


class G711(RtpCodec):
    """G.711 at 8 kHz with the project's bit-exact tables (µ-law and A-law)."""

    def __init__(self, law: str) -> None:
        if law not in ("PCMU", "PCMA"):
            raise ValueError(f"expected PCMU or PCMA, got {law!r}")
        self.law = law

    @property
    def name(self) -> str:
        return self.law

    @property
    def sample_rate(self) -> int:
        return RATE

    @property
    def samples_per_frame(self) -> int:
        return FRAME

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        return (ulaw_encode if self.law == "PCMU" else alaw_encode)(samples)

    def decode(self, payload: bytes) -> bytes:
        out = (ulaw_decode if self.law == "PCMU" else alaw_decode)(bytes(payload))
        return out.astype("<i2").tobytes()


class KeyEvents:
    """RFC 4733 telephone-events to keys: one key per event, reported when it ends.

    A new key starts with a new RTP timestamp, or with a packet that is not an end packet
    after the previous event ended (a replayed recording reuses its timestamps); the three
    copies of an end packet count once.
    """

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self.on_key = on_key
        self._timestamp: int | None = None
        self._ended = False

    def handle_packet(self, packet: Any) -> None:
        try:
            event = DtmfEvent.parse(packet.payload)
        except ValueError:
            return  # a malformed telephone-event: ignored like any bad packet
        if packet.timestamp != self._timestamp or (self._ended and not event.end):
            self._timestamp = packet.timestamp
            self._ended = False
        if event.end and not self._ended:
            self._ended = True
            if event.digit in "0123456789*#":
                self.on_key(event.digit)


def choose_codec(offer: Any) -> int:
    """The payload type to answer with: G.722 when offered, else the first of PCMU/PCMA."""
    audio = next((m for m in offer.media if m.media == "audio" and m.port), None)
    if audio is None:
        raise SdpNegotiationError("the offer has no audio stream")
    offered = [c.payload_type for c in audio.codecs]
    if 9 in offered:
        return 9
    for pt in offered:
        if pt in (0, 8):
            return pt
    names = [c.encoding_name or str(c.payload_type) for c in audio.codecs]
    raise SdpNegotiationError(f"no common codec: offered {names}; we take G722, PCMU, PCMA")
