"""Log-in for the desk: sessions kept in the store, CSRF tokens, and log-in throttling.

A session id is 256 random bits, sent only in an HttpOnly, SameSite=Strict cookie and stored
as its SHA-256, so the database alone opens no session. Each session has its own CSRF token,
which every form posts back. Log-in attempts are limited per account and per address; when
either limit is reached every attempt is refused, the right password included, until the
window has passed.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

from ivr.agents.directory import Agent, Directory
from ivr.services.store import Store

SESSION_COOKIE: Final = "ivr_desk"
LOGIN_CSRF_COOKIE: Final = "ivr_desk_login"
SESSION_TTL_S: Final = 12 * 3600
FAILS_PER_ACCOUNT: Final = 5
FAILS_PER_ADDRESS: Final = 20
THROTTLE_WINDOW_S: Final = 15 * 60


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and secrets.compare_digest(str(a), str(b))


@dataclass(frozen=True)
class Session:
    agent: Agent
    csrf: str


class Sessions:
    def __init__(self, store: Store, directory: Directory) -> None:
        self.store = store
        self.directory = directory

    def open(self, agent: Agent) -> tuple[str, str]:
        """A new session for ``agent``: (cookie value, CSRF token)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        self.store.execute(
            "INSERT INTO desk_sessions(id_hash, agent_id, csrf, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (_hash(sid), agent.id, csrf, now, now + SESSION_TTL_S),
        )
        return sid, csrf

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        rows = self.store.query(
            "SELECT agent_id, csrf FROM desk_sessions WHERE id_hash = ? AND expires_at > ?",
            (_hash(sid), time.time()),
        )
        if not rows:
            return None
        agent = self.directory.get(int(rows[0]["agent_id"]))
        if agent is None or agent.disabled:
            return None
        return Session(agent, rows[0]["csrf"])

    def close(self, sid: str | None) -> Agent | None:
        """End a session; the agent it belonged to."""
        session = self.get(sid)
        if sid:
            self.store.execute("DELETE FROM desk_sessions WHERE id_hash = ?", (_hash(sid),))
        return session.agent if session else None

    def logged_in(self, agent_id: int) -> bool:
        rows = self.store.query(
            "SELECT 1 FROM desk_sessions WHERE agent_id = ? AND expires_at > ? LIMIT 1",
            (agent_id, time.time()),
        )
        return bool(rows)


class LoginThrottle:
    """Log-in attempts per account and per address within a sliding window (in memory).

    An attempt is counted as failed the moment it starts and forgiven when it succeeds, so
    guesses sent in parallel cannot slip past the limit while their passwords are checked.
    """

    def __init__(
        self,
        *,
        per_account: int = FAILS_PER_ACCOUNT,
        per_address: int = FAILS_PER_ADDRESS,
        window_s: float = THROTTLE_WINDOW_S,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def begin(self, account: str, address: str) -> float:
        """Start an attempt: 0 when it may go on (it counts as failed until
        :meth:`succeeded`), else the seconds to wait."""
        now = time.monotonic()
        keys = self._keys(account, address)
        with self._lock:
            wait = max(
                self._wait(keys[0], self.per_account, now),
                self._wait(keys[1], self.per_address, now),
            )
            if wait == 0:
                for key in keys:
                    self._fails.setdefault(key, deque()).append(now)
        return wait

    def succeeded(self, account: str, address: str) -> None:
        with self._lock:
            for key in self._keys(account, address):
                fails = self._fails.get(key)
                if fails:
                    fails.pop()

    @staticmethod
    def _keys(account: str, address: str) -> tuple[str, str]:
        return f"account:{account.lower()}", f"address:{address}"

    def _wait(self, key: str, limit: int, now: float) -> float:
        fails = self._fails.get(key)
        if not fails:
            return 0.0
        while fails and fails[0] <= now - self.window_s:
            fails.popleft()
        if len(fails) < limit:
            return 0.0
        return fails[-limit] + self.window_s - now
