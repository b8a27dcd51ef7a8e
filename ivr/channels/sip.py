"""The SIP channel: one answered call of `ivr serve`, seen the way the dialog sees a channel."""

from __future__ import annotations

import queue

from ivr.agents.routing import AgentRouter
from ivr.channels.base import Channel, ChannelEvent, HangUp
from ivr.channels.sip_stack import Leg
from ivr.speech.audio import Audio

RECEIVE_TIMEOUT_S = 2.0  # frames arrive every 20 ms; two seconds of nothing means the line died


class SipChannel(Channel):
    name = "sip"

    def __init__(
        self, leg: Leg, agent_uri: str | None = None, router: AgentRouter | None = None
    ) -> None:
        self.leg = leg
        self.agent_uri = agent_uri
        self.router = router
        self.sample_rate = leg.rate  # 8 kHz for G.711, 16 kHz for G.722
        self.caller_id = leg.caller
        self.dialed = leg.dialled
        self._hung_up = False

    def receive(self) -> ChannelEvent:
        if self._hung_up:
            return HangUp("ended")
        try:
            event = self.leg.events.get(timeout=RECEIVE_TIMEOUT_S)
        except queue.Empty:
            self._hung_up = True
            return HangUp("media stopped")
        if isinstance(event, HangUp):
            self._hung_up = True
        return event

    def play(self, audio: Audio) -> None:
        self.leg.play(audio.to_rate(self.sample_rate).samples)

    def stop_playback(self) -> None:
        self.leg.stop_playback()

    def is_playing(self) -> bool:
        return self.leg.is_playing()

    def hang_up(self) -> None:
        if not self._hung_up:
            self._hung_up = True
            self.leg.hang_up()

    def connect_agent(self) -> bool | None:
        """Blind transfer by REFER: to a free agent's phone when the router has one, else to
        the agents' address; True once an agent answered."""
        if self.router is not None:
            return self.router.connect(self.leg.transfer)  # (target, seconds to wait)
        if not self.agent_uri:
            return None
        status = self.leg.transfer(self.agent_uri)
        return 200 <= status < 300

    def close(self) -> None:
        self.hang_up()
