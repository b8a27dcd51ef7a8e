"""Routing a transfer to an agent who is free.

The agent chosen is logged in to the desk, available, speaks the call's language, has a SIP
address, and has been idle longest. They are marked "on a call" in the same statement that
chooses them (two calls never take the same agent), the case pops on their desk, and the
REFER goes to their phone. A phone that does not answer is skipped (that agent is set away,
as contact centres do on a missed offer) and the next free agent is tried; then the shop's
own ``--agent`` address, with the case id in the transfer target; then the queue, with the
callback promise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote

from ivr.agents.cases import CaseDesk
from ivr.agents.directory import Agent, AgentState, Directory
from ivr.agents.queue import AgentQueue, QueuedCase
from ivr.services.store import Store

log = logging.getLogger(__name__)

CASE_HEADER: Final = "X-Ivr-Case"
MAX_TRIES: Final = 5
RING_S: Final = 20.0  # how long an agent's phone may ring before the next agent is tried
PBX_WAIT_S: Final = 30.0  # the shop's own agents' address (its queue may ring a while)

# REFER to a target, waiting at most the given seconds; the final SIP status of that call
Transfer = Callable[[str, float], int]


def with_case_header(uri: str, queue_id: int) -> str:
    """The transfer target with the case id as a header of the INVITE it makes (RFC 3261
    §19.1.1 URI headers): a PBX reads ``X-Ivr-Case`` and opens ``/cases/<id>`` on the desk."""
    sep = "&" if "?" in uri else "?"
    return f"{uri}{sep}{CASE_HEADER}={quote(str(queue_id))}"


class AgentRouter:
    """Chooses agents for transfers; one per ``ivr serve`` process, shared by its calls."""

    def __init__(
        self,
        store: Store,
        queue: AgentQueue,
        *,
        fallback_uri: str | None = None,
        ring_s: float = RING_S,
        fallback_wait_s: float = PBX_WAIT_S,
    ) -> None:
        self.store = store
        self.ring_s = ring_s
        self.fallback_wait_s = fallback_wait_s
        self.queue = queue
        self.directory = Directory(store)
        self.desk = CaseDesk(store)
        self.fallback_uri = fallback_uri

    def free_agents(self, locale: str) -> list[Agent]:
        """Free agents for a call in ``locale``, idle longest first."""
        rows = self.store.query(
            "SELECT a.id FROM agents a WHERE a.state = ? AND a.disabled = 0"
            " AND a.sip_uri IS NOT NULL AND EXISTS (SELECT 1 FROM desk_sessions s"
            " WHERE s.agent_id = a.id AND s.expires_at > ?) ORDER BY a.state_since, a.id",
            (str(AgentState.AVAILABLE), time.time()),
        )
        agents = [self.directory.get(int(r["id"])) for r in rows]
        return [a for a in agents if a is not None and a.speaks(locale)]

    def has_agents(self) -> bool:
        """Whether any agent could ever take a call here (a desk account with a phone)."""
        rows = self.store.query(
            "SELECT 1 FROM agents WHERE disabled = 0 AND sip_uri IS NOT NULL LIMIT 1"
        )
        return bool(rows)

    def take(self, locale: str, skip: set[int]) -> Agent | None:
        """Mark the free agent idle longest "on a call" and return them."""
        for agent in self.free_agents(locale):
            if agent.id in skip:
                continue
            if self.directory.set_state(
                agent.id, AgentState.ON_CALL, only_from=(AgentState.AVAILABLE,)
            ):
                return agent
        return None

    def connect(self, transfer: Transfer) -> bool | None:
        """Hand the caller of this thread's call to an agent: True when one answered, False
        when none did (the caller is promised a callback), None when there is nobody to send
        calls to (the case waits in the queue)."""
        case = self.queue.current()
        if case is None:
            return self._fallback(None, transfer)
        locale = self._locale(case.call_id)
        tried: set[int] = set()
        for _ in range(MAX_TRIES):
            agent = self.take(locale, tried)
            if agent is None:
                break
            tried.add(agent.id)
            assert agent.sip_uri is not None
            self.desk.assign(case.id, agent.id)  # the case pops on their desk now
            log.info("[%s] case %d offered to agent %s", case.call_id, case.id, agent.name)
            status = transfer(agent.sip_uri, self.ring_s)
            if 200 <= status < 300:
                self.desk.claim(case.id, agent)
                return True
            log.info(
                "[%s] agent %s did not answer (%d); trying the next",
                case.call_id,
                agent.name,
                status,
            )
            self.desk.assign(case.id, None)
            self.directory.set_state(agent.id, AgentState.AWAY, only_from=(AgentState.ON_CALL,))
        connected = self._fallback(case, transfer)
        if connected is None and (tried or self.has_agents()):
            connected = False
        if connected is False:
            self.desk.promise_callback(case.id)
        return connected

    def _fallback(self, case: QueuedCase | None, transfer: Transfer) -> bool | None:
        if not self.fallback_uri:
            return None
        target = self.fallback_uri if case is None else with_case_header(self.fallback_uri, case.id)
        status = transfer(target, self.fallback_wait_s)
        return 200 <= status < 300

    def _locale(self, call_id: str) -> str:
        rows = self.store.query("SELECT locale FROM calls WHERE id = ?", (call_id,))
        return str(rows[0]["locale"]) if rows else ""
