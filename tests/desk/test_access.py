"""Who may do what on the desk, over real HTTP to a real `ivr desk` process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from ivr.agents.cases import CaseDesk
from ivr.agents.directory import Agent, Directory
from ivr.services.store import Store
from tests.desk.helpers import PASSWORD, DeskProcess, Http, transferred_call


def test_pages_and_apis_need_a_session(desk: DeskProcess, store: Store) -> None:
    case = transferred_call(store)
    anon = Http(desk.port)
    page = anon.get("/")
    assert page.status == 303 and page.headers["location"] == "/login"
    assert anon.get(f"/cases/{case}").status == 303
    assert anon.get("/supervisor").status == 303
    for path in (
        "/api/cases",
        "/api/report",
        "/events",
        "/fragments/queue",
        f"/fragments/cases/{case}",
    ):
        assert anon.get(path).status == 401, path
    assert anon.post(f"/cases/{case}/claim", {"csrf": "x"}).status == 401
    assert "13800138000" not in anon.get("/login").body


def test_an_agent_cannot_open_supervisor_pages(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    alice = Http(desk.port)
    assert alice.login("alice").status == 303
    for path in ("/supervisor", "/supervisor/calls.csv", "/fragments/board", "/api/report"):
        assert alice.get(path).status == 403, path
    sue = Http(desk.port)
    login = sue.login("sue")
    assert login.status == 303 and login.headers["location"] == "/supervisor"
    for path in ("/supervisor", "/supervisor/calls.csv", "/fragments/board", "/api/report"):
        assert sue.get(path).status == 200, path


def test_session_cookie_is_httponly_and_samesite(
    desk: DeskProcess, people: dict[str, Agent]
) -> None:
    login = Http(desk.port).login("alice")
    cookies = [c for c in login.set_cookies if c.startswith("ivr_desk=")]
    assert login.status == 303 and cookies
    assert "httponly" in cookies[0].lower() and "samesite=strict" in cookies[0].lower()
    assert "default-src 'self'" in login.headers["content-security-policy"]


def test_posts_without_the_csrf_token_are_refused(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    case = transferred_call(store)
    alice = Http(desk.port)
    alice.login("alice")
    assert alice.post(f"/cases/{case}/claim", {}).status == 403
    assert alice.post(f"/cases/{case}/claim", {"csrf": "forged"}).status == 403
    assert alice.post("/state", {"state": "available"}).status == 403
    assert alice.post("/logout", {}).status == 403
    assert CaseDesk(store).summary(case).status == "waiting"  # type: ignore[union-attr]
    # the log-in form has its own token (no forged log-ins into an attacker's account)
    fresh = Http(desk.port)
    assert fresh.post("/login", {"name": "alice", "password": PASSWORD}).status == 403
    # with the token, the same post goes through
    assert alice.post(f"/cases/{case}/claim", {"csrf": alice.csrf()}).status == 303
    assert CaseDesk(store).summary(case).claimed_by == "alice"  # type: ignore[union-attr]


def test_wrong_passwords_are_throttled_per_account(
    desk: DeskProcess, people: dict[str, Agent]
) -> None:
    client = Http(desk.port)
    for _ in range(5):
        assert client.login("alice", "guess-guess").status == 401
    # the sixth attempt is refused before the password is looked at, even the right one
    refused = client.login("alice")
    assert refused.status == 429 and int(refused.headers["retry-after"]) > 0
    assert "ivr_desk" not in client.cookies
    # another account from the same address is not locked out by alice's attacker
    assert Http(desk.port).login("bob").status == 303


def test_no_two_agents_claim_the_same_case(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    case = transferred_call(store)
    agents = [Http(desk.port), Http(desk.port)]
    agents[0].login("alice")
    agents[1].login("bob")
    tokens = [a.csrf() for a in agents]
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def claim(i: int) -> None:
        barrier.wait(5)
        statuses.append(agents[i].post(f"/cases/{case}/claim", {"csrf": tokens[i]}).status)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(statuses) == [303, 409]
    claims = [e for e in CaseDesk(store).audit_log(case) if e["action"] == "claim"]
    assert len(claims) == 1


def test_number_is_masked_until_claimed_and_the_reveal_is_audited(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    case = transferred_call(store, caller="13800138000")
    alice, bob = Http(desk.port), Http(desk.port)
    alice.login("alice")
    bob.login("bob")
    page = alice.get(f"/cases/{case}")
    assert page.status == 200
    assert "*******8000" in page.body and "13800138000" not in page.body
    assert alice.post(f"/cases/{case}/reveal", {"csrf": alice.csrf()}).status == 403
    assert alice.post(f"/cases/{case}/claim", {"csrf": alice.csrf()}).status == 303
    page = alice.get(f"/cases/{case}")
    assert "13800138000" not in page.body and 'id="reveal"' in page.body
    # another agent can neither see nor reveal it
    assert "13800138000" not in bob.get(f"/cases/{case}").body
    assert bob.post(f"/cases/{case}/reveal", {"csrf": bob.csrf()}).status == 403
    revealed = alice.post(f"/cases/{case}/reveal", {"csrf": alice.csrf()})
    assert revealed.status == 200 and "13800138000" in revealed.body
    audit = [(e["name"], e["action"]) for e in CaseDesk(store).audit_log(case)]
    assert audit == [("alice", "claim"), ("alice", "reveal_number")]
    assert "13800138000" not in json.dumps(bob.get("/api/cases?status=claimed").json())
    assert "13800138000" not in desk.log.read_text()


def test_notes_and_resolve_by_the_holder_only(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    case = transferred_call(store)
    alice, bob = Http(desk.port), Http(desk.port)
    alice.login("alice")
    bob.login("bob")
    alice.post(f"/cases/{case}/claim", {"csrf": alice.csrf()})
    assert (
        alice.post(f"/cases/{case}/notes", {"csrf": alice.csrf(), "text": "reset sent"}).status
        == 303
    )
    assert (
        bob.post(f"/cases/{case}/resolve", {"csrf": bob.csrf(), "outcome": "solved"}).status == 409
    )
    assert bob.post(f"/cases/{case}/notes", {"csrf": bob.csrf(), "text": "mine"}).status == 403
    assert bob.post(f"/cases/{case}/ticket", {"csrf": bob.csrf(), "team": "accounts"}).status == 403
    assert (
        alice.post(
            f"/cases/{case}/ticket", {"csrf": alice.csrf(), "team": "accounts", "summary": "locked"}
        ).status
        == 303
    )
    assert (
        alice.post(f"/cases/{case}/resolve", {"csrf": alice.csrf(), "outcome": "solved"}).status
        == 303
    )
    detail = CaseDesk(store).detail(case)
    assert detail is not None
    assert detail.summary.status == "resolved" and detail.summary.outcome == "solved"
    assert [n["text"] for n in detail.notes] == ["reset sent"]
    assert detail.ticket_number and detail.tickets[0]["team"] == "accounts"
    # the ticket reaches the caller's full number, which the page never showed
    (ticket,) = store.query("SELECT caller FROM tickets")
    assert ticket["caller"] == "13800138000"


def test_api_with_bearer_tokens(
    desk: DeskProcess, store: Store, people: dict[str, Agent], db: Path, tmp_path: Path
) -> None:
    case = transferred_call(store, said="my account is locked, call me on 13900139000")
    directory = Directory(store)
    agent_token = directory.new_token("alice")
    boss_token = directory.new_token("sue")
    client = Http(desk.port)
    assert client.get("/api/cases").status == 401
    assert client.get("/api/cases", headers={"Authorization": "Bearer ivr_wrong"}).status == 401
    reply = client.get(
        "/api/cases?status=waiting", headers={"Authorization": f"Bearer {agent_token}"}
    )
    assert reply.status == 200
    (item,) = reply.json()["cases"]
    assert item["id"] == case and item["reason"] == "caller_request" and item["language"] == "en-US"
    assert item["verified"] is False and item["waited_seconds"] >= 0
    said = {"speaker": "caller", "text": "my account is locked, call me on *******9000"}
    assert said in item["transcript"]
    assert (
        client.get("/api/report", headers={"Authorization": f"Bearer {agent_token}"}).status == 403
    )
    report = client.get("/api/report", headers={"Authorization": f"Bearer {boss_token}"})
    assert report.status == 200
    cli = subprocess.run(
        [sys.executable, "-m", "ivr", "report", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"IVR_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == report.json()
    assert report.json()["transfers_by_reason"] == {"caller_request": 1}
    # tokens are stored hashed, and revoking one locks it out
    assert not store.query("SELECT 1 FROM agent_tokens WHERE token_hash = ?", (agent_token,))
    directory.revoke_tokens("alice")
    assert (
        client.get("/api/cases", headers={"Authorization": f"Bearer {agent_token}"}).status == 401
    )


def test_logout_and_disabled_accounts(
    desk: DeskProcess, store: Store, people: dict[str, Agent]
) -> None:
    alice = Http(desk.port)
    alice.login("alice")
    assert alice.get("/").status == 200
    assert alice.post("/logout", {"csrf": alice.csrf()}).status == 303
    assert alice.get("/").status == 303
    bob = Http(desk.port)
    bob.login("bob")
    Directory(store).disable("bob")
    assert bob.get("/").status == 303  # the session ended with the account
    assert Http(desk.port).login("bob").status == 401


def test_feedback_audio_plays_for_the_desk_only(
    desk: DeskProcess, store: Store, people: dict[str, Agent], tmp_path: Path
) -> None:
    import time

    import numpy as np

    from ivr.speech.audio import write_wav

    case = transferred_call(store)
    (call_id,) = store.query("SELECT call_id FROM agent_queue WHERE id = ?", (case,))[0]
    wav = tmp_path / "feedback" / "f1.wav"
    wav.parent.mkdir()
    write_wav(wav, np.zeros(8000, np.int16), 8000)
    store.execute(
        "INSERT INTO feedback(call_id, created_at, locale, caller, category, queue, transcript,"
        " audio_path, seconds) VALUES (?, ?, 'en-US', NULL, 'bug', 'product', ?, ?, 1.0)",
        (call_id, time.time(), "the app <b>crashes</b>", str(wav)),
    )
    (fid,) = store.query("SELECT id FROM feedback")[0]
    alice = Http(desk.port)
    alice.login("alice")
    page = alice.get(f"/cases/{case}").body
    assert f'<audio controls preload="none" src="/feedback/{fid}/audio">' in page
    assert "the app &lt;b&gt;crashes&lt;/b&gt;" in page
    audio = alice.get(f"/feedback/{fid}/audio")
    assert audio.status == 200 and audio.headers["content-type"] == "audio/wav"
    assert Http(desk.port).get(f"/feedback/{fid}/audio", headers={"Accept": "*/*"}).status == 401
    assert alice.get("/feedback/999/audio").status == 404
