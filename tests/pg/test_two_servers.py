"""Two `ivr serve` behind Kamailio (deploy/kamailio, round robin) sharing one PostgreSQL:
a ticket opened in a call on one is read back in a call on the other, a recovery lock set
by wrong codes on one holds on the other, and the agent queue (as the desk reads it) holds
the cases of both. The two servers take their calls at the same time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ivr.agents.cases import CaseDesk
from ivr.agents.directory import Directory, Role
from ivr.services.store import open_store
from tests.desk.helpers import Http, start_desk
from tests.sip.peers import Scenario, run_sipp, start_ivr
from tests.sip.test_kamailio import start_kamailio, stop_kamailio
from tests.sip.test_sipp import FIXTURES

CONTENT_REVIEW = "3" + "1" + "2" + "1" + "2"  # dance, yesterday, open the ticket, nothing else
THREE_WRONG = "1" + "1" + "111111" + "1" + "222222" + "1" + "333333" + "1"


def _call(port: int, tmp_path: Path, keys: str, then: str = "") -> None:
    """Keys 1.5 s apart; ``then`` after a pause of 4 s (a read-back's lone "1" is taken as
    yes once no more keys follow, so the next answer waits for it, as a listening caller does)."""
    scenario = Scenario(proxied=True).invite().keys(keys)
    if then:
        scenario.keys(then, 4000)
    scenario.wait_bye()
    result = run_sipp(scenario.xml(), port, tmp_path, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def _side_by_side(port: int, tmp_path: Path, *calls: tuple[str, str]) -> None:
    """The calls at once, each dialled a second after the one before (so round robin sends
    them to the servers in that order)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        running = []
        for keys, then in calls:
            running.append(pool.submit(_call, port, tmp_path, keys, then))
            time.sleep(1.0)
        for call in running:
            call.result()


def _calls(dsn: str, home: Path) -> list[dict[str, object]]:
    store = open_store(dsn, home=home)
    try:
        return [dict(r) for r in store.query("SELECT * FROM calls ORDER BY started_at")]
    finally:
        store.close()


def test_two_servers_share_one_postgresql(ivr_home: Path, tmp_path: Path, pg_dsn: str) -> None:
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    ivrs = [
        start_ivr(
            ivr_home, tmp_path, "--db", pg_dsn, "--fixtures", str(fixtures), "--server-id", name
        )
        for name in ("ivr-a", "ivr-b")
    ]
    proxy, port = start_kamailio(tmp_path, [i.port for i in ivrs])
    try:
        # on one server a ticket is opened; on the other, three wrong codes are given
        _side_by_side(port, tmp_path, (CONTENT_REVIEW, ""), (THREE_WRONG, ""))
        store = open_store(pg_dsn, home=tmp_path)
        try:
            (ticket,) = store.query("SELECT number, team FROM tickets")
        finally:
            store.close()
        # then each server gets the other's work: recovery for the same number on the first,
        # the ticket's status on the second
        _side_by_side(port, tmp_path, ("1" + "1", ""), ("4" + ticket["number"] + "1", "2"))
    finally:
        stop_kamailio(proxy)
        for ivr in ivrs:
            ivr.stop()
    calls = _calls(pg_dsn, tmp_path)
    assert len(calls) == 4, calls
    # which call is which: the two calls of a round start within a second of each other, so
    # by what happened in them (the rounds themselves follow one another)
    first_round, second_round = calls[:2], calls[2:]
    (review,) = [c for c in first_round if c["ticket_team"] == "content_review"]
    (wrong,) = [c for c in first_round if c["id"] != review["id"]]
    (status,) = [c for c in second_round if "ticket_number" in str(c["states"])]
    (locked,) = [c for c in second_round if c["id"] != status["id"]]
    # round robin: each server got the other's work
    assert review["server"] != wrong["server"], calls
    assert status["server"] != review["server"] and locked["server"] != wrong["server"], calls
    assert review["ticket_team"] == "content_review" and review["outcome"] == "resolved"
    store = open_store(pg_dsn, home=tmp_path)
    try:

        def said(call_id: object) -> str:
            return " ".join(
                r["text"]
                for r in store.query(
                    "SELECT text FROM transcript WHERE call_id = ? AND speaker = 'ivr'",
                    (call_id,),
                )
            )

        # the other server found the ticket the first opened and read its status
        assert status["outcome"] == "resolved", status
        assert "could not find" not in said(status["id"]) and "is open" in said(status["id"])
        # the first server's lock-out holds on the other: recovery refused there at once
        assert wrong["transfer_reason"] == "verification_failed", wrong
        assert '"locked"' in str(locked["states"]) or "locked" in said(locked["id"]).lower()
        assert locked["outcome"] == "transferred", locked
        (account,) = store.query(
            "SELECT recovery_locked_until FROM accounts WHERE phone = '13800138000'"
        )
        assert account["recovery_locked_until"] > float(str(wrong["started_at"]))
        # the desk, on the same database, sees the cases both servers queued
        queued = {c.call_id for c in CaseDesk(store).cases()}
        assert {wrong["id"], locked["id"]} <= queued
        token = Directory(store).new_token(
            Directory(store).add("alice", role=Role.AGENT, password="long-enough-1").name
        )
    finally:
        store.close()
    desk = start_desk(pg_dsn, tmp_path, ivr_home)  # type: ignore[arg-type]
    try:
        reply = Http(desk.port).get("/api/cases", headers={"Authorization": f"Bearer {token}"})
    finally:
        desk.stop()
    assert reply.status == 200, reply.body
    on_the_desk = {c["call_id"] for c in reply.json()["cases"]}
    assert {wrong["id"], locked["id"]} <= on_the_desk
