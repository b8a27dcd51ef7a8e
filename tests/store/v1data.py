"""A database as the release before schema versions wrote it: the frozen version-1 DDL and
a row (or two) in every table, with the values the services write."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

V1_SQL = Path(__file__).parent.parent / "data" / "schema" / "v1.sql"

ROWS: dict[str, list[dict[str, Any]]] = {
    "accounts": [
        {"phone": "13800138000", "name": "Wang Fang", "recovery_locked_until": 0.0},
        {"phone": "13912345678", "name": "Li Wei", "recovery_locked_until": 1893456000.0},
    ],
    "otp_codes": [
        {
            "id": 1,
            "phone": "13800138000",
            "code_hash": "ab" * 32,
            "salt": "00ff00ff00ff00ff",
            "issued_at": 1764000000.0,
            "expires_at": 1764000300.0,
            "tries": 1,
            "resends": 0,
            "used": 0,
        },
    ],
    "sms_outbox": [
        {
            "id": 1,
            "to_number": "13800138000",
            "body": "Your verification code is 482913.",
            "created_at": 1764000000.5,
            "kind": "verification_code",
        },
    ],
    "calls": [
        {
            "id": "c0ffee0000000001",
            "started_at": 1764000000.0,
            "ended_at": 1764000090.0,
            "channel": "sip",
            "locale": "en-US",
            "caller_masked": "*******8000",
            "outcome": "transferred",
            "transfer_reason": "caller_request",
            "intent": "agent",
            "ticket_team": None,
            "states": json.dumps(["welcome", "main_menu", "transfer"]),
            "error": None,
        },
        {
            "id": "c0ffee0000000002",
            "started_at": 1764000100.0,
            "ended_at": None,
            "channel": "sip",
            "locale": "zh-CN",
            "caller_masked": None,
            "outcome": None,
            "transfer_reason": None,
            "intent": None,
            "ticket_team": None,
            "states": "[]",
            "error": None,
        },
    ],
    "turns": [
        {
            "call_id": "c0ffee0000000001",
            "seq": 1,
            "at": 1764000010.0,
            "ask": "main_menu",
            "mode": "speech",
            "heard": "agent",
            "value": "agent",
            "confidence": 0.93,
            "latency_ms": 84.0,
        },
        {
            "call_id": "c0ffee0000000001",
            "seq": 2,
            "at": 1764000020.0,
            "ask": "confirm",
            "mode": "dtmf",
            "heard": "1",
            "value": "yes",
            "confidence": None,
            "latency_ms": None,
        },
    ],
    "transcript": [
        {
            "call_id": "c0ffee0000000001",
            "seq": 1,
            "at": 1764000001.0,
            "speaker": "ivr",
            "text": "Welcome.",
        },
        {
            "call_id": "c0ffee0000000001",
            "seq": 2,
            "at": 1764000010.0,
            "speaker": "caller",
            "text": "agent",
        },
    ],
    "agent_queue": [
        {
            "id": 1,
            "call_id": "c0ffee0000000001",
            "created_at": 1764000080.0,
            "reason": "caller_request",
            "status": "waiting",
            "case_json": json.dumps({"intent": "agent", "caller": "*******8000"}),
        },
    ],
    "tickets": [
        {
            "number": "20261120",
            "team": "content_review",
            "status": "open",
            "created_at": 1764000050.0,
            "updated_at": 1764000050.0,
            "caller": "13800138000",
            "call_id": "c0ffee0000000001",
            "locale": "en-US",
            "details_json": json.dumps({"content_id": "V123"}),
            "resolution": None,
        },
    ],
    "ticket_history": [
        {
            "id": 1,
            "number": "20261120",
            "at": 1764000050.0,
            "status": "open",
            "note": "created for content_review",
        },
    ],
    "feedback": [
        {
            "id": 1,
            "call_id": "c0ffee0000000001",
            "created_at": 1764000060.0,
            "locale": "en-US",
            "caller": "*******8000",
            "category": "bug",
            "queue": "engineering",
            "transcript": "the app crashes",
            "audio_path": "/tmp/f.wav",
            "seconds": 4.5,
            "confirmed": 1,
        },
    ],
    "agents": [
        {
            "id": 1,
            "name": "alice",
            "role": "agent",
            "password_hash": "$argon2id$v=19$x",
            "sip_uri": "sip:alice@127.0.0.1:5062",
            "languages": json.dumps(["en-US"]),
            "disabled": 0,
            "created_at": 1763000000.0,
            "state": "available",
            "state_since": 1764000000.0,
        },
    ],
    "agent_tokens": [
        {"id": 1, "agent_id": 1, "token_hash": "cd" * 32, "created_at": 1763000001.0, "revoked": 0},
    ],
    "desk_sessions": [
        {
            "id_hash": "ef" * 32,
            "agent_id": 1,
            "csrf": "csrf-token",
            "created_at": 1764000000.0,
            "expires_at": 1764028800.0,
        },
    ],
    "case_work": [
        {
            "queue_id": 1,
            "caller_number": "13800138000",
            "assigned_to": None,
            "claimed_by": 1,
            "claimed_at": 1764000085.0,
            "resolved_at": None,
            "outcome": None,
            "ticket_number": "20261120",
        },
    ],
    "case_notes": [
        {"id": 1, "queue_id": 1, "agent_id": 1, "at": 1764000086.0, "text": "called back"},
    ],
    "callbacks": [
        {
            "queue_id": 1,
            "created_at": 1764000087.0,
            "status": "pending",
            "agent_id": None,
            "note": None,
            "done_at": None,
        },
    ],
    "desk_audit": [
        {
            "id": 1,
            "at": 1764000085.0,
            "agent_id": 1,
            "action": "claim",
            "queue_id": 1,
            "detail": None,
        },
    ],
    "desk_events": [
        {"id": 1, "at": 1764000080.0, "kind": "queued", "queue_id": 1, "agent_id": None},
    ],
}


def build_v1(path: Path) -> None:
    """Write a version-1 database at ``path``, as the earlier release left it."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(V1_SQL.read_text())
        with conn:
            for table, rows in ROWS.items():
                for row in rows:
                    cols = ", ".join(row)
                    marks = ", ".join("?" * len(row))
                    conn.execute(
                        f"INSERT INTO {table}({cols}) VALUES ({marks})", tuple(row.values())
                    )
    finally:
        conn.close()


def table_rows(path: Path, table: str, columns: list[str]) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        cols = ", ".join(columns)
        return [dict(r) for r in conn.execute(f"SELECT {cols} FROM {table} ORDER BY rowid")]
    finally:
        conn.close()
