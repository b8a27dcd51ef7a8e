"""The services on PostgreSQL: the same schema and migrations as SQLite, every service's
writes, and two connections (as two machines) sharing tickets, codes, lock-outs and the
agent queue."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ivr.agents.cases import CallbackWindow, CaseDesk, CaseStatus
from ivr.agents.directory import AgentError, Directory, Role
from ivr.agents.queue import AgentQueue
from ivr.services.accounts import Accounts
from ivr.services.callers import CallerMemory
from ivr.services.calls import CallRecorder, Outcome, TurnRecord, load_call, recover_interrupted
from ivr.services.codes import Codes, SmsOutbox, Verify
from ivr.services.integrity import check_store
from ivr.services.migrations import LATEST
from ivr.services.pgstore import PgStore, masked, pg_sql
from ivr.services.store import Store, open_store
from ivr.services.tickets import Tickets

PHONE = "13800138000"


def _pg(dsn: str, tmp_path: Path) -> PgStore:
    store = open_store(dsn, home=tmp_path)
    assert isinstance(store, PgStore)
    return store


def _columns_sqlite(path: Path) -> dict[str, list[str]]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: [c[1] for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        conn.close()


def test_same_schema_as_sqlite(pg_dsn: str, tmp_path: Path) -> None:
    store = _pg(pg_dsn, tmp_path)
    try:
        assert store.upgraded == list(range(1, LATEST + 1)) and store.version == LATEST
        rows = store.query(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
    finally:
        store.close()
    pg: dict[str, list[str]] = {}
    for row in rows:
        pg.setdefault(row["table_name"], []).append(row["column_name"])
    sqlite_file = tmp_path / "x.sqlite3"
    Store(sqlite_file).close()
    assert pg == _columns_sqlite(sqlite_file)
    again = _pg(pg_dsn, tmp_path)
    assert again.upgraded == []
    again.close()


def test_services_write_and_read(pg_dsn: str, tmp_path: Path) -> None:
    store = _pg(pg_dsn, tmp_path)
    try:
        accounts = Accounts(store)
        accounts.seed_demo()
        accounts.seed_demo()  # ON CONFLICT DO NOTHING
        outbox = SmsOutbox(store)
        rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=PHONE, server="a")
        rec.state("welcome")
        rec.line("ivr", "Welcome.")
        rec.turn(TurnRecord("main_menu", "dtmf", "1", "account_recovery", None))
        rec.turn_latency(42.5)
        rec.set(intent="account_recovery")
        tickets = Tickets(store, outbox)
        ticket = tickets.create(
            "content_review", {"id": "V1"}, caller=PHONE, locale="en-US", call_id=rec.call_id
        )
        tickets.update(ticket.number, status="resolved", resolution="restored")
        queue_id = AgentQueue(store).enqueue(
            rec.call_id, "caller_request", {"verified": True, "caller": "*******8000"}, caller=PHONE
        )
        desk = CaseDesk(store)
        desk.promise_callback(queue_id)
        desk.promise_callback(queue_id, window=CallbackWindow.AFTERNOON)
        assert [c.window for c in desk.callbacks()] == [CallbackWindow.AFTERNOON]
        # the ticket changed after it was opened: news for the caller, found by number
        memory = CallerMemory(store, b"k" * 32)
        news = memory.recall(PHONE, call_id=rec.call_id, tasks=frozenset()).news
        assert [n.number for n in news] == [ticket.number]
        directory = Directory(store)
        alice = directory.add("alice", role=Role.AGENT, password="long-enough-1")
        with pytest.raises(AgentError, match="exists already"):
            directory.add("alice", role=Role.AGENT, password="long-enough-1")
        assert desk.claim(queue_id, alice)
        summary = desk.summary(queue_id)
        assert summary is not None and summary.verified and summary.caller == "*******8000"
        assert summary.status is CaseStatus.CLAIMED
        codes = Codes(store, accounts, outbox, fixed_code="482913")
        codes.issue(PHONE)
        assert codes.verify(PHONE, "000000") is Verify.WRONG
        assert codes.verify(PHONE, "482913") is Verify.OK
        assert recover_interrupted(store, server="a") == [rec.call_id]
        call = load_call(store, rec.call_id[:8])
        assert call is not None and call.outcome == str(Outcome.ABANDONED)
        assert call.transfer_reason == "interrupted"
        assert [t.latency_ms for t in call.turns] == [42.5]
        assert isinstance(call.started_at, float) and call.started_at > 1.7e9
        assert tickets.get(ticket.number).status == "resolved"  # type: ignore[union-attr]
        assert [m.kind for m in outbox.messages(PHONE)] == ["verification_code"]
        assert check_store(store) == []
    finally:
        store.close()


def test_two_machines_share_codes_locks_tickets_and_queue(pg_dsn: str, tmp_path: Path) -> None:
    a, b = _pg(pg_dsn, tmp_path), _pg(pg_dsn, tmp_path)
    try:
        for s in (a, b):
            Accounts(s).seed_demo()
        codes_a = Codes(a, Accounts(a), SmsOutbox(a), fixed_code="135790")
        codes_b = Codes(b, Accounts(b), SmsOutbox(b), fixed_code="135790")
        codes_a.issue(PHONE)
        assert codes_a.verify(PHONE, "135790") is Verify.OK
        assert codes_b.verify(PHONE, "135790") is Verify.EXPIRED  # no replay on the other
        # a lock-out set by wrong codes on one machine holds on the other
        other = "13912345678"
        codes_a.issue(other)
        for _ in range(3):
            codes_b.verify(other, "000000")
        assert codes_a.verify(other, "135790") is Verify.LOCKED
        assert Accounts(a).by_phone(other).recovery_locked()  # type: ignore[union-attr]
        # a ticket opened on one is read back on the other; the queue and desk see both
        ticket = Tickets(a, SmsOutbox(a)).create("content_review", {}, caller=None, locale="en-US")
        assert Tickets(b, SmsOutbox(b)).get(ticket.number) is not None
        AgentQueue(a).enqueue("call-a", "caller_request", {})
        AgentQueue(b).enqueue("call-b", "caller_request", {})
        assert {c.call_id for c in CaseDesk(a).cases()} == {"call-a", "call-b"}
    finally:
        a.close()
        b.close()


def test_a_code_is_accepted_once_under_a_race(pg_dsn: str, tmp_path: Path) -> None:
    stores = [_pg(pg_dsn, tmp_path) for _ in range(4)]
    try:
        Accounts(stores[0]).seed_demo()
        Codes(stores[0], Accounts(stores[0]), SmsOutbox(stores[0]), fixed_code="246810").issue(
            PHONE
        )
        results: list[Verify] = []
        start = threading.Barrier(len(stores))

        def verify(store: PgStore) -> None:
            codes = Codes(store, Accounts(store), SmsOutbox(store))
            start.wait(30)
            results.append(codes.verify(PHONE, "246810"))

        threads = [threading.Thread(target=verify, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == sorted([Verify.OK] + [Verify.EXPIRED] * 3)
    finally:
        for s in stores:
            s.close()


def test_translation() -> None:
    assert pg_sql("SELECT * FROM t WHERE a = ? AND b LIKE '?%'") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE '?%%'",
        False,
    )
    text, returning = pg_sql("INSERT INTO agent_queue(call_id) VALUES (?)")
    assert returning and text.endswith("RETURNING id")
    assert pg_sql("INSERT INTO case_work(queue_id) VALUES (?)")[1] is False
    assert "->> 'verified'" in pg_sql("SELECT json_extract(q.case_json, '$.verified') FROM q")[0]
    assert masked("postgresql://ivr:s3cret@db.example:5432/ivr") == (
        "postgresql://ivr:***@db.example:5432/ivr"
    )


def test_cli_on_postgresql(pg_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "IVR_HOME": str(tmp_path)}

    def ivr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ivr", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    store = _pg(pg_dsn, tmp_path)
    number = (
        Tickets(store, SmsOutbox(store))
        .create("content_review", {"id": "V9"}, caller=PHONE, locale="en-US")
        .number
    )
    store.close()
    assert ivr("db", "version", "--db", pg_dsn).stdout.startswith(f"schema version {LATEST}")
    assert ivr("db", "check", "--db", pg_dsn).stdout.strip() == "ok"
    shown = ivr("tickets", "show", number, "--db", pg_dsn)
    assert shown.returncode == 0 and number in shown.stdout and PHONE not in shown.stdout
    backup = tmp_path / "ivr.pgdump"
    done = ivr("db", "backup", str(backup), "--db", pg_dsn)
    assert done.returncode == 0, done.stderr
    assert backup.read_bytes().startswith(b"PGDMP")
    bad = ivr("calls", "list", "--db", "postgresql://ivr:s3cret@127.0.0.1:1/none")
    assert bad.returncode == 2 and "cannot open the database" in bad.stderr
    assert "s3cret" not in bad.stderr and "Traceback" not in bad.stderr


def test_two_machines_share_recovery_attempts_and_one_alert(pg_dsn: str, tmp_path: Path) -> None:
    from ivr.config import RecoveryLimits
    from ivr.services.recovery_guard import Hold, RecoveryAttempts, RecoveryAudit

    a, b = _pg(pg_dsn, tmp_path), _pg(pg_dsn, tmp_path)
    try:
        guards = [
            RecoveryAttempts(s, Tickets(s, SmsOutbox(s)), secret=b"k", limits=RecoveryLimits())
            for s in (a, b)
        ]
        accounts = ("13800138000", "13912345678", "14155550123", "13500135000", "13600136000")
        for n, account in enumerate(accounts):  # the line's five attempts, on both machines
            got = guards[n % 2].attempt(
                account, found=True, caller="13700137000", server="ab"[n % 2]
            )
            assert got.hold is None
        assert guards[1].attempt(PHONE, found=True, caller="13700137000").hold is Hold.CALLER
        assert guards[0].caller_held("13700137000") is not None
        (ticket,) = Tickets(b, SmsOutbox(b)).list(team="accounts")  # one, opened by the third
        assert ticket.caller is None and ticket.details["caller"] == "*******7000"
        rows = RecoveryAudit(a).rows()
        assert [r.result for r in rows][:2] == ["held:calling_number_limit", "found"]
        assert {r.server for r in rows} >= {"a", "b"}
    finally:
        a.close()
        b.close()
