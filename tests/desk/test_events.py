"""The desk's event stream over real HTTP to a real `ivr desk` process: a page or a dropped
stream resumes from the last event it had, so no change is lost between the two."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from ivr.agents.cases import CaseDesk
from ivr.agents.directory import Agent
from ivr.services.store import Store
from tests.desk.helpers import DeskProcess, Http, transferred_call


def _changes(desk: DeskProcess, client: Http, count: int, **headers: str) -> list[dict[str, Any]]:
    """Read ``count`` change events from a fresh stream (with ``headers``), with their ids."""
    conn = http.client.HTTPConnection("127.0.0.1", desk.port, timeout=10)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    path = headers.pop("path", "/events")
    conn.request("GET", path, headers={"Cookie": cookie, **headers})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    changes: list[dict[str, Any]] = []
    block: dict[str, str] = {}
    try:
        while len(changes) < count:
            line = resp.fp.readline().decode().rstrip("\n")
            if line:
                key, _, value = line.partition(": ")
                block[key] = value
                continue
            if block.get("event") == "change":
                data = json.loads(block["data"])
                assert block["id"] == str(data["id"])  # the id a browser resumes from
                changes.append(data)
            block = {}
    finally:
        conn.close()
    return changes


def test_a_stream_resumes_after_the_last_event_it_had(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    alice = Http(desk.port)
    alice.login("alice")
    cases = CaseDesk(store)
    case = transferred_call(store)
    cases.assign(case, people["alice"].id)
    page = alice.get("/")  # made at this event: the page's stream starts after it
    seen = int(re.search(r'data-seen="(\d+)"', page.body).group(1))  # type: ignore[union-attr]
    assert seen == cases.last_event()
    cases.claim(case, people["alice"])  # while the page loads, before its stream connects
    cases.assign(case, None)
    resumed = _changes(desk, alice, 2, path=f"/events?after={seen}")
    assert [(c["kind"], c["queue_id"]) for c in resumed] == [
        ("claimed", case),
        ("unassigned", case),
    ]
    assert all(c["id"] > seen for c in resumed)
    # a browser that reconnects says where it was (Last-Event-ID), which wins over the page's
    again = _changes(
        desk, alice, 1, path=f"/events?after={seen}", **{"Last-Event-ID": str(resumed[0]["id"])}
    )
    assert again == resumed[1:]


def test_a_bad_resume_point_is_refused(desk: DeskProcess, people: dict[str, Agent]) -> None:
    alice = Http(desk.port)
    alice.login("alice")
    for bad in ("abc", "-1", "1e9", "%C2%B2", "9" * 40):
        reply = alice.get(f"/events?after={bad}")
        assert reply.status == 400, bad
    assert alice.get("/events", headers={"Last-Event-ID": "x"}).status == 400
