"""Schema versions: the store upgrades itself, one numbered step at a time.

Each step is a list of SQL statements run in one transaction with the version bump, so a
database is always at a whole version (a kill mid-upgrade leaves the previous one). Steps
are never edited once released: a change to the schema is a new step at the end.
``schema_version`` holds one row per applied step. A database written before versions
existed has the version-1 tables and no ``schema_version``; step 1 (``CREATE ... IF NOT
EXISTS``) adopts it as it is.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Final

from ivr.errors import IvrError

log = logging.getLogger(__name__)


class SchemaError(IvrError):
    """A database this release cannot open (written by a newer release) or upgrade."""


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: tuple[str, ...]


def split_sql(script: str) -> tuple[str, ...]:
    """The complete statements of a script, in order (comments dropped)."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"expected complete SQL statements, got a trailing {pending.strip()!r}")
    return tuple(out)


# Version 1: the tables as first released (calls, turns, codes, tickets, the agent desk).
V1: Final = """
CREATE TABLE IF NOT EXISTS accounts (
    phone TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    recovery_locked_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS otp_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    salt TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    resends INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sms_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL DEFAULT 'message'
);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    channel TEXT NOT NULL,
    locale TEXT NOT NULL,
    caller_masked TEXT,
    outcome TEXT,
    transfer_reason TEXT,
    intent TEXT,
    ticket_team TEXT,
    states TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE TABLE IF NOT EXISTS turns (
    call_id TEXT NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    ask TEXT NOT NULL,
    mode TEXT NOT NULL,
    heard TEXT,
    value TEXT,
    confidence REAL,
    latency_ms REAL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS transcript (
    call_id TEXT NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    speaker TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS agent_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'waiting',
    case_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    number TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    caller TEXT,
    call_id TEXT,
    locale TEXT NOT NULL,
    details_json TEXT NOT NULL,
    resolution TEXT
);
CREATE TABLE IF NOT EXISTS ticket_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number TEXT NOT NULL REFERENCES tickets(number),
    at REAL NOT NULL,
    status TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT,
    created_at REAL NOT NULL,
    locale TEXT NOT NULL,
    caller TEXT,
    category TEXT NOT NULL,
    queue TEXT NOT NULL,
    transcript TEXT NOT NULL,
    audio_path TEXT,
    seconds REAL NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0
);
-- the agent desk (ivr/agents, ivr/desk): accounts, sessions, the work on each queued case
CREATE TABLE IF NOT EXISTS agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT,
    sip_uri TEXT,
    languages TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'away',
    state_since REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS agent_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS desk_sessions (
    id_hash TEXT PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS case_work (
    queue_id INTEGER PRIMARY KEY REFERENCES agent_queue(id),
    caller_number TEXT,
    assigned_to INTEGER REFERENCES agents(id),
    claimed_by INTEGER REFERENCES agents(id),
    claimed_at REAL,
    resolved_at REAL,
    outcome TEXT,
    ticket_number TEXT
);
CREATE TABLE IF NOT EXISTS case_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id INTEGER NOT NULL REFERENCES agent_queue(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    at REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    queue_id INTEGER PRIMARY KEY REFERENCES agent_queue(id),
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    agent_id INTEGER REFERENCES agents(id),
    note TEXT,
    done_at REAL
);
CREATE TABLE IF NOT EXISTS desk_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    agent_id INTEGER,
    action TEXT NOT NULL,
    queue_id INTEGER,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS desk_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    queue_id INTEGER,
    agent_id INTEGER
);
"""

MIGRATIONS: Final = (
    Migration(1, "the first released tables", split_sql(V1)),
    Migration(
        2,
        "calls name the server that answered them (crash recovery); lookup indexes",
        (
            "ALTER TABLE calls ADD COLUMN server TEXT",
            "CREATE INDEX IF NOT EXISTS calls_open ON calls(ended_at, server)",
            "CREATE INDEX IF NOT EXISTS otp_codes_phone ON otp_codes(phone, used)",
            "CREATE INDEX IF NOT EXISTS agent_queue_status ON agent_queue(status)",
            "CREATE INDEX IF NOT EXISTS ticket_history_number ON ticket_history(number)",
        ),
    ),
    Migration(
        3,
        "account recovery: attempts per account and calling number, alerts, an audit log",
        split_sql(
            """
CREATE TABLE IF NOT EXISTS recovery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    caller_key TEXT,
    account_key TEXT NOT NULL,
    account_masked TEXT,
    found INTEGER NOT NULL DEFAULT 0,
    call_id TEXT,
    server TEXT
);
CREATE INDEX IF NOT EXISTS recovery_attempts_caller ON recovery_attempts(caller_key, at);
CREATE INDEX IF NOT EXISTS recovery_attempts_account ON recovery_attempts(account_key, at);
CREATE TABLE IF NOT EXISTS recovery_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    caller_key TEXT NOT NULL,
    ticket_number TEXT
);
CREATE INDEX IF NOT EXISTS recovery_alerts_caller ON recovery_alerts(caller_key, at);
CREATE TABLE IF NOT EXISTS recovery_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    call_id TEXT,
    server TEXT,
    caller_masked TEXT,
    account_masked TEXT,
    step TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS recovery_audit_call ON recovery_audit(call_id);
"""
        ),
    ),
    Migration(
        4,
        "callers remembered by a keyed hash of their number; callback windows",
        (
            "ALTER TABLE calls ADD COLUMN caller_key TEXT",
            "ALTER TABLE calls ADD COLUMN account_key TEXT",
            "CREATE INDEX IF NOT EXISTS calls_caller_key ON calls(caller_key, started_at)",
            "CREATE INDEX IF NOT EXISTS tickets_caller ON tickets(caller)",
            "ALTER TABLE callbacks ADD COLUMN call_window TEXT",
        ),
    ),
    Migration(
        5,
        "patient mode: remembered per caller (a keyed hash of the number), shown on the call",
        (
            "CREATE TABLE IF NOT EXISTS patient_callers ("
            " caller_hash TEXT PRIMARY KEY, since REAL NOT NULL, expires_at REAL NOT NULL)",
            "CREATE INDEX IF NOT EXISTS patient_callers_expiry ON patient_callers(expires_at)",
            "ALTER TABLE calls ADD COLUMN patient INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        6,
        "turns: the caller's wait from their last word to the reply (live calls)",
        ("ALTER TABLE turns ADD COLUMN wait_ms REAL",),
    ),
)
LATEST: Final = MIGRATIONS[-1].version

VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, applied_at REAL NOT NULL, summary TEXT NOT NULL)"
)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database (0: empty, or written before versions existed)."""
    has = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not has:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, *, target: int = LATEST) -> list[int]:
    """Bring the database up to ``target``; the versions applied (none when up to date).

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step takes the
    write lock first and reads the version again, so two processes opening one database at
    once apply every step exactly once.
    """
    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = current_version(conn)
            if version > LATEST:
                raise SchemaError(
                    f"expected a database of schema version {LATEST} or older, got version"
                    f" {version} (written by a newer release of ivr)"
                )
            if version >= step.version:
                conn.execute("ROLLBACK")
                continue
            if version != step.version - 1:
                raise SchemaError(f"expected schema version {step.version - 1}, got {version}")
            conn.execute(VERSION_TABLE)
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version(version, applied_at, summary) VALUES (?, ?, ?)",
                (step.version, time.time(), step.summary),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(step.version)
        log.info("store upgraded to schema version %d: %s", step.version, step.summary)
    return applied
