"""Agent and supervisor accounts: passwords, API tokens, and each agent's state.

Passwords are hashed with argon2id (memory-hard) and never kept or logged in clear.
API tokens are random and stored as their SHA-256 (a token has 256 bits of entropy, so a
fast hash is enough); a token is shown once, when it is made, and can be revoked.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr.errors import IvrError
from ivr.services.store import Store

TOKEN_PREFIX: Final = "ivr_"
_HASHER: Final = PasswordHasher()
# verified against when the account does not exist, so a wrong name costs the same time
_DUMMY_HASH: Final = _HASHER.hash(secrets.token_hex(16))


class AgentError(IvrError):
    """An agent account that cannot be made or changed as asked."""


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"


class AgentState(enum.StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    AWAY = "away"


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    role: Role
    sip_uri: str | None
    languages: tuple[str, ...]
    disabled: bool
    state: AgentState
    state_since: float

    @property
    def is_supervisor(self) -> bool:
        return self.role is Role.SUPERVISOR

    def speaks(self, locale: str) -> bool:
        """An agent with no languages listed takes calls in any language."""
        return not self.languages or locale in self.languages

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": str(self.role),
            "sip": self.sip_uri,
            "languages": list(self.languages),
            "disabled": self.disabled,
            "state": str(self.state),
            "state_since": self.state_since,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _agent(row: Any) -> Agent:
    return Agent(
        id=int(row["id"]),
        name=row["name"],
        role=Role(row["role"]),
        sip_uri=row["sip_uri"],
        languages=tuple(json.loads(row["languages"])),
        disabled=bool(row["disabled"]),
        state=AgentState(row["state"]),
        state_since=float(row["state_since"]),
    )


class Directory:
    """The accounts of the people who work the desk."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- accounts ----------------------------------------------------------------------------
    def add(
        self,
        name: str,
        *,
        role: Role,
        password: str,
        sip_uri: str | None = None,
        languages: tuple[str, ...] = (),
    ) -> Agent:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise AgentError(f"expected a name of letters, digits, '-', '_' or '.', got {name!r}")
        if len(password) < 8:
            raise AgentError(f"expected a password of at least 8 characters, got {len(password)}")
        if sip_uri is not None and not sip_uri.startswith(("sip:", "sips:")):
            raise AgentError(f"expected a SIP address (sip:user@host), got {sip_uri!r}")
        try:
            self.store.execute(
                "INSERT INTO agents(name, role, password_hash, sip_uri, languages, created_at,"
                " state, state_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    str(role),
                    _HASHER.hash(password),
                    sip_uri,
                    json.dumps(list(languages)),
                    time.time(),
                    str(AgentState.AWAY),
                    time.time(),
                ),
            )
        except self.store.IntegrityError as exc:
            raise AgentError(f"an account named {name!r} exists already") from exc
        agent = self.by_name(name)
        assert agent is not None
        return agent

    def by_name(self, name: str) -> Agent | None:
        rows = self.store.query("SELECT * FROM agents WHERE name = ?", (name,))
        return _agent(rows[0]) if rows else None

    def get(self, agent_id: int) -> Agent | None:
        rows = self.store.query("SELECT * FROM agents WHERE id = ?", (agent_id,))
        return _agent(rows[0]) if rows else None

    def all(self) -> list[Agent]:
        return [_agent(r) for r in self.store.query("SELECT * FROM agents ORDER BY name")]

    def disable(self, name: str) -> Agent:
        agent = self._existing(name)
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE agents SET disabled = 1, state = ?, state_since = ? WHERE id = ?",
                (str(AgentState.AWAY), time.time(), agent.id),
            )
            conn.execute("DELETE FROM desk_sessions WHERE agent_id = ?", (agent.id,))
            conn.execute("UPDATE agent_tokens SET revoked = 1 WHERE agent_id = ?", (agent.id,))
        return self._existing(name)

    def check_password(self, name: str, password: str) -> Agent | None:
        """The account when the password is right and the account enabled, else None."""
        rows = self.store.query("SELECT * FROM agents WHERE name = ?", (name,))
        stored = rows[0]["password_hash"] if rows and rows[0]["password_hash"] else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if not rows or rows[0]["disabled"]:
            return None
        return _agent(rows[0])

    # --- API tokens --------------------------------------------------------------------------
    def new_token(self, name: str) -> str:
        agent = self._existing(name)
        if agent.disabled:
            raise AgentError(f"{name!r} is disabled")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.execute(
            "INSERT INTO agent_tokens(agent_id, token_hash, created_at) VALUES (?, ?, ?)",
            (agent.id, hash_token(token), time.time()),
        )
        return token

    def revoke_tokens(self, name: str) -> int:
        agent = self._existing(name)
        cur = self.store.execute(
            "UPDATE agent_tokens SET revoked = 1 WHERE agent_id = ? AND revoked = 0", (agent.id,)
        )
        return int(cur.rowcount)

    def by_token(self, token: str) -> Agent | None:
        rows = self.store.query(
            "SELECT a.* FROM agent_tokens t JOIN agents a ON a.id = t.agent_id"
            " WHERE t.token_hash = ? AND t.revoked = 0 AND a.disabled = 0",
            (hash_token(token),),
        )
        return _agent(rows[0]) if rows else None

    # --- state -------------------------------------------------------------------------------
    def set_state(
        self, agent_id: int, state: AgentState, *, only_from: tuple[AgentState, ...] = ()
    ) -> bool:
        """Change an agent's state; with ``only_from``, only from one of those states
        (atomic: two routers never both take the same free agent)."""
        sql = "UPDATE agents SET state = ?, state_since = ? WHERE id = ? AND disabled = 0"
        params: list[Any] = [str(state), time.time(), agent_id]
        if only_from:
            sql += f" AND state IN ({', '.join('?' * len(only_from))})"
            params += [str(s) for s in only_from]
        with self.store.transaction() as conn:
            changed = conn.execute(sql, tuple(params)).rowcount == 1
            if changed:
                conn.execute(
                    "INSERT INTO desk_events(at, kind, agent_id) VALUES (?, 'agent_state', ?)",
                    (time.time(), agent_id),
                )
        return changed

    def _existing(self, name: str) -> Agent:
        agent = self.by_name(name)
        if agent is None:
            raise AgentError(f"no account named {name!r}")
        return agent
