"""Schema versions: a database written by the release before versions opens in this one,
upgraded, with every record intact; a newer database is refused; a failed step leaves the
database at its previous version."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from ivr.services import migrations
from ivr.services.calls import load_call
from ivr.services.codes import SmsOutbox
from ivr.services.migrations import LATEST, Migration, SchemaError, migrate
from ivr.services.store import Store
from ivr.services.tickets import Tickets
from tests.store.v1data import ROWS, V1_SQL, build_v1, table_rows


def _tables(path: Path) -> dict[str, list[tuple[str, str, int, object, int]]]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {n: [tuple(c)[1:] for c in conn.execute(f"PRAGMA table_info({n})")] for n in names}
    finally:
        conn.close()


def test_fixture_fills_every_table_of_version_1() -> None:
    created = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", V1_SQL.read_text()))
    assert created == set(ROWS)


def test_version_1_database_upgrades_and_keeps_every_record(tmp_path: Path) -> None:
    db = tmp_path / "v1.sqlite3"
    build_v1(db)
    before = {t: table_rows(db, t, list(rows[0])) for t, rows in ROWS.items()}
    assert before == ROWS  # the fixture is what was written

    store = Store(db)
    assert store.upgraded == list(range(1, LATEST + 1))
    assert store.version == LATEST
    store.close()

    for table, rows in ROWS.items():
        assert table_rows(db, table, list(rows[0])) == rows, table
    # the new column exists, empty for old calls
    assert [r["server"] for r in table_rows(db, "calls", ["server"])] == [None, None]
    # an upgraded database has exactly the tables and columns of a new one
    fresh = tmp_path / "fresh.sqlite3"
    Store(fresh).close()
    assert _tables(db) == _tables(fresh)

    # the services read the old records
    store = Store(db)
    assert store.upgraded == []  # opening again applies nothing
    call = load_call(store, "c0ffee0000000001")
    assert call is not None and [t.value for t in call.turns] == ["agent", "yes"]
    assert call.states == ["welcome", "main_menu", "transfer"]
    ticket = Tickets(store, SmsOutbox(store)).get("20261120")
    assert ticket is not None and ticket.details == {"content_id": "V123"}
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite3"
    Store(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO schema_version(version, applied_at, summary) VALUES (?, 0, 'future')",
            (LATEST + 1,),
        )
    conn.close()
    with pytest.raises(SchemaError, match=f"version {LATEST} or older, got version {LATEST + 1}"):
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == LATEST + 1
    conn.close()


def test_failed_step_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "v1.sqlite3"
    build_v1(db)
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, target=1) == [1]
    broken = Migration(
        2,
        "a step that fails half-way",
        ("ALTER TABLE calls ADD COLUMN half TEXT", "ALTER TABLE no_such_table ADD COLUMN x"),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (migrations.MIGRATIONS[0], broken))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, target=2)
    assert migrations.current_version(conn) == 1
    columns = [r[1] for r in conn.execute("PRAGMA table_info(calls)")]
    assert "half" not in columns
    conn.close()
    monkeypatch.undo()
    store = Store(db)  # the real step 2 applies afterwards
    assert store.upgraded == list(range(2, LATEST + 1))
    store.close()
    for table, rows in ROWS.items():
        assert table_rows(db, table, list(rows[0])) == rows, table


def test_two_processes_opening_at_once_apply_each_step_once(tmp_path: Path) -> None:
    import ast
    import subprocess
    import sys

    db = tmp_path / "v1.sqlite3"
    build_v1(db)
    code = "import sys; from ivr.services.store import Store; print(Store(sys.argv[1]).upgraded)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    applied = sorted(v for out in outs for v in ast.literal_eval(out))
    assert applied == list(range(1, LATEST + 1))
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == (
        list(range(1, LATEST + 1))
    )
    conn.close()
