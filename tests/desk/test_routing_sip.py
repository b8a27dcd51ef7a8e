"""Routing over SIP with real phones: baresip agents, a baresip caller, `ivr serve` and
`ivr desk` as processes on 127.0.0.1, and the agent's desk open in a headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ivr.agents.cases import CaseDesk
from ivr.agents.directory import AgentState, Directory, Role
from ivr.config import Settings
from ivr.desk.auth import Sessions
from ivr.services.store import Store
from ivr.speech.audio import write_wav
from tests.desk.helpers import PASSWORD, DeskProcess
from tests.sip.peers import Baresip, free_port, start_ivr
from tests.sip.test_baresip import RATE, Timeline

pytestmark = pytest.mark.slow


def _phone(folder: Path, name: str) -> Baresip:
    t = np.arange(RATE * 90) / RATE
    write_wav(
        folder.with_suffix(".wav"), (np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16), RATE
    )
    phone = Baresip.make(folder, f"aufile,{folder.with_suffix('.wav')}", answer=True, user=name)
    phone.start(seconds=150)
    return phone


def test_transfer_goes_to_the_free_agent_and_pops_on_their_desk(  # type: ignore[no-untyped-def]
    ivr_home: Path, settings: Settings, tmp_path: Path, db: Path, store: Store,
    desk: DeskProcess, browser: Any,
) -> None:  # fmt: skip
    directory = Directory(store)
    amy_phone, ben_phone = _phone(tmp_path / "amy", "amy"), _phone(tmp_path / "ben", "ben")
    # cat has been free longest, but her phone is not there: her offer fails and is skipped
    cat = directory.add(
        "cat", role=Role.AGENT, password=PASSWORD,
        sip_uri=f"sip:cat@127.0.0.1:{free_port()};transport=tcp",
    )  # fmt: skip
    Sessions(store, directory).open(cat)
    directory.set_state(cat.id, AgentState.AVAILABLE)
    amy = directory.add(
        "amy", role=Role.AGENT, password=PASSWORD, sip_uri=f"sip:amy@127.0.0.1:{amy_phone.port}"
    )
    ben = directory.add(
        "ben", role=Role.AGENT, password=PASSWORD, sip_uri=f"sip:ben@127.0.0.1:{ben_phone.port}"
    )
    Sessions(store, directory).open(ben)  # logged in, but away
    context = browser.new_context()
    server = None
    caller = None
    try:
        page = context.new_page()
        page.set_default_timeout(10000)
        page.goto(f"{desk.url}/login")
        page.fill("#name", "amy")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.click("#state-available")
        page.wait_for_selector("#my-state >> text=available")
        server = start_ivr(ivr_home, tmp_path, "--db", str(db))  # the desk's database
        line = Timeline(settings)
        line.say("welcome")
        line.answer("agent")
        wav = line.wav(tmp_path / "caller.wav", tail=60)
        caller = Baresip.make(tmp_path / "caller", f"aufile,{wav}", user="13800138000")
        caller.start(f"/dial sip:ivr@127.0.0.1:{server.port}", seconds=int(line.t) + 90)
        # the case pops on amy's desk as the REFER goes to her phone
        page.wait_for_url("**/cases/*", timeout=int((line.t + 90) * 1000))
        case_id = int(page.url.rsplit("/", 1)[1])
        try:
            page.wait_for_selector("#holder >> text=amy", timeout=60000)
        except PlaywrightTimeout as exc:  # say what the server did with the call
            raise AssertionError(
                f"amy's desk never showed her holding case {case_id}:\n"
                + server.log.read_text(errors="replace")[-4000:]
            ) from exc
    finally:
        if caller is not None:
            caller.stop()
        context.close()
        if server is not None:
            server.stop()
        for phone in (amy_phone, ben_phone):
            phone.stop()
    summary = CaseDesk(store).summary(case_id)
    assert summary is not None and summary.claimed_by == "amy"
    assert directory.get(amy.id).state is AgentState.ON_CALL  # type: ignore[union-attr]
    assert directory.get(cat.id).state is AgentState.AWAY  # type: ignore[union-attr]
    assert directory.get(ben.id).state is AgentState.AWAY  # type: ignore[union-attr]
    offered = [
        (r["kind"], r["agent_id"])
        for r in store.query(
            "SELECT kind, agent_id FROM desk_events WHERE queue_id = ?", (case_id,)
        )
        if r["kind"] in ("assigned", "claimed")
    ]
    assert offered == [("assigned", cat.id), ("assigned", amy.id), ("claimed", amy.id)]
    assert amy_phone.heard().stat().st_size > 0  # amy's phone took the call
    assert not list((tmp_path / "ben" / "rec").glob("dump-*")), "ben is away: no call for him"
