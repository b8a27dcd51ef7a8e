"""The desk under test: a real `ivr desk` process on 127.0.0.1, an HTTP client with cookies,
cases put in the queue the way a call puts them, and a headless system Chromium."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ivr.agents.directory import Agent, Directory, Role
from ivr.agents.queue import AgentQueue
from ivr.services.calls import CallRecorder, Outcome, TurnRecord
from ivr.services.store import Store
from tests.sip.peers import free_port

PASSWORD = "correct horse battery"


@dataclass
class DeskProcess:
    proc: subprocess.Popen[str]
    port: int
    db: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_desk(db: Path, workdir: Path, home: Path) -> DeskProcess:
    port = free_port()
    log = workdir / f"desk-{port}.log"
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr", "desk", "--port", str(port), "--db", str(db)],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "IVR_HOME": str(home)},
    )
    out.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/login")
            status = conn.getresponse().status
        except OSError:
            status = 0
        finally:
            conn.close()
        if status == 200:
            return DeskProcess(proc, port, db, log)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    raise AssertionError("ivr desk did not start:\n" + log.read_text(errors="replace"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    set_cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Http:
    """A client that keeps cookies and never follows redirects."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    address: str = "127.0.0.1"

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=10)
        hdrs = {"Accept": "text/html", **(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                val = rest.split(";", 1)[0]
                if val in ('""', "") or "max-age=0" in value.lower():
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        reply = Reply(
            resp.status,
            {k.lower(): v for k, v in resp.getheaders()},
            text,
            [v for k, v in resp.getheaders() if k.lower() == "set-cookie"],
        )
        conn.close()
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> Reply:
        return self.request("POST", path, form=form, **kw)

    def csrf(self, path: str = "/") -> str:
        page = self.get(path)
        match = re.search(r'name="csrf" value="([^"]+)"', page.body)
        assert match, f"no CSRF field on {path}: {page.status} {page.body[:300]}"
        return match.group(1)

    def login(self, name: str, password: str = PASSWORD) -> Reply:
        token = self.csrf("/login")
        return self.post("/login", {"csrf": token, "name": name, "password": password})


def add_people(store: Store) -> dict[str, Agent]:
    directory = Directory(store)
    return {
        "alice": directory.add("alice", role=Role.AGENT, password=PASSWORD, languages=("en-US",)),
        "bob": directory.add("bob", role=Role.AGENT, password=PASSWORD),
        "sue": directory.add("sue", role=Role.SUPERVISOR, password=PASSWORD),
    }


def transferred_call(
    store: Store,
    *,
    caller: str = "13800138000",
    said: str = "I forgot my password",
    reason: str = "caller_request",
    locale: str = "en-US",
    verified: bool = False,
) -> int:
    """A call that reaches the transfer the way the flow writes it: record, turns,
    transcript, then the queued case. Returns the case id."""
    rec = CallRecorder(store, channel="sip", locale=locale, caller_id=caller)
    for state in ("welcome", "main_menu", "transfer"):
        rec.state(state)
    rec.line("ivr", "Welcome. How can I help you?")
    rec.line("caller", said)
    rec.turn(TurnRecord("main_menu", "speech", said, "agent", 0.91))
    rec.finish(Outcome.TRANSFERRED, reason=reason)
    case = {
        "call_id": rec.call_id,
        "caller": "*******8000",
        "verified": verified,
        "intent": None,
        "account": None,
        "reason": reason,
        "step": "main_menu",
        "collected": {},
        "states": rec.states,
        "transcript": [
            {"speaker": "ivr", "text": "Welcome. How can I help you?"},
            {"speaker": "caller", "text": said},
        ],
    }
    AgentQueue(store).enqueue(rec.call_id, reason, case, caller=caller)
    return AgentQueue(store).waiting()[-1]["id"]  # type: ignore[no-any-return]
