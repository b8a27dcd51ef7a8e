"""PostgreSQL store (psycopg 3): the same services, schema and migrations as SQLite, for
several `ivr serve` and `ivr desk` processes on several machines sharing one database.

The services write one SQL dialect (``?`` placeholders, ``ON CONFLICT``, ``json_extract``);
this module translates it: ``%s`` placeholders, ``RETURNING id`` for the tables whose rows
are numbered (``lastrowid``), ``->>`` for JSON fields; in the schema, ``SERIAL`` for
``AUTOINCREMENT`` and ``DOUBLE PRECISION`` for ``REAL`` (times keep their microseconds).
Every transaction first takes one advisory lock, so writers take turns exactly as they do on
SQLite (read-check-write sequences such as a code's tries and lock-out stay atomic across
machines); single statements commit on their own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ivr.errors import IvrError
from ivr.services.migrations import LATEST, MIGRATIONS, VERSION_TABLE, SchemaError
from ivr.services.store import Store

WRITE_LOCK: Final = 0x1F5E_0001  # the advisory lock every transaction takes
MIGRATION_LOCK: Final = 0x1F5E_0002
SCHEMES: Final = ("postgresql://", "postgres://")
_SERIAL: Final = re.compile(
    r"CREATE TABLE IF NOT EXISTS (\w+) \(\s*id INTEGER PRIMARY KEY AUTOINCREMENT", re.S
)
SERIAL_TABLES: Final = frozenset(
    m.group(1) for step in MIGRATIONS for s in step.statements for m in [_SERIAL.search(s)] if m
)
_INSERT: Final = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.I)
_JSON: Final = re.compile(r"json_extract\(([\w.]+), '\$\.(\w+)'\)")


class StoreError(IvrError):
    """The database cannot be reached or used."""


def is_postgres(db: str | Path) -> bool:
    return str(db).startswith(SCHEMES)


def masked(dsn: str) -> str:
    """The address without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def pg_ddl(statement: str) -> str:
    """A schema statement as written for SQLite, for PostgreSQL."""
    statement = statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "SERIAL PRIMARY KEY")
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)


def pg_sql(sql: str, *, params: bool = True) -> tuple[str, bool]:
    """A service's statement for PostgreSQL; True when it returns the new row's id.

    With ``params``, a literal ``%`` is doubled (psycopg reads ``%s`` placeholders then)."""
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%" and params:
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    text = _JSON.sub(r"((\1)::json ->> '\2')", "".join(out))
    insert = _INSERT.match(text)
    returning = bool(insert and insert.group(1) in SERIAL_TABLES and "RETURNING" not in text)
    if returning:
        text = text.rstrip().rstrip(";") + " RETURNING id"
    return text, returning


class Row(tuple):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no column {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = tuple(c.name for c in cursor.description or ())
    return lambda values: Row(values, names)


class Cursor:
    """What the services read from a statement: rows, ``rowcount``, ``lastrowid``."""

    def __init__(self, cursor: Any, returning: bool) -> None:
        self._cursor = cursor
        self.rowcount = int(cursor.rowcount)
        self.lastrowid: int | None = None
        self._rows: list[Row] | None = None
        if returning:
            row = cursor.fetchone()
            self.lastrowid = int(row[0]) if row is not None else None
            self._rows = []

    def fetchone(self) -> Row | None:
        if self._rows is not None:
            return self._rows.pop(0) if self._rows else None
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Row]:
        if self._rows is not None:
            rows, self._rows = self._rows, []
            return rows
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class _Connection:
    """The connection a transaction hands out (``conn.execute(...)``), translating SQL."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Cursor:
        return self.store.execute(sql, params)


class PgStore(Store):
    """One PostgreSQL database shared by the services of a process (thread-safe)."""

    engine = "postgresql"

    def __init__(self, dsn: str, *, home: Path) -> None:
        import psycopg

        self.IntegrityError = psycopg.IntegrityError
        self.dsn = dsn
        self.path = home / "ivr.postgresql"  # beside the data directory's other files
        self._lock = threading.RLock()
        try:
            self._pg = psycopg.connect(dsn, autocommit=True, row_factory=_row_factory)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the database {masked(dsn)}: {exc}") from exc
        self._wrapper = _Connection(self)
        self.upgraded = migrate_pg(self._pg)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock, self._pg.transaction():
            self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield self._wrapper

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        text, returning = pg_sql(sql, params=bool(params))
        with self._lock:
            return Cursor(self._pg.execute(text, params or None), returning)

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    @property
    def version(self) -> int:
        with self._lock:
            return current_version_pg(self._pg)

    def backup(self, target: Path | str) -> None:
        """A consistent copy with ``pg_dump`` (custom format; ``pg_restore`` reads it)."""
        target = Path(target)
        tool = shutil.which("pg_dump")
        if tool is None:
            raise StoreError("expected pg_dump (Debian package postgresql-client) on PATH")
        partial = target.with_name(target.name + ".partial")
        done = subprocess.run(
            [tool, "--format=custom", f"--file={partial}", f"--dbname={self.dsn}"],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise StoreError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
        partial.replace(target)

    def close(self) -> None:
        with self._lock:
            self._pg.close()


def current_version_pg(conn: Any) -> int:
    row = conn.execute("SELECT to_regclass('schema_version')").fetchone()
    if row is None or row[0] is None:
        return 0
    return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def migrate_pg(conn: Any, *, target: int = LATEST) -> list[int]:
    """The same numbered steps as on SQLite, each in one transaction under a lock."""
    import time

    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version > target:
            break
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            version = current_version_pg(conn)
            if version > LATEST:
                raise SchemaError(
                    f"expected a database of schema version {LATEST} or older, got version"
                    f" {version} (written by a newer release of ivr)"
                )
            if version >= step.version:
                continue
            if version != step.version - 1:
                raise SchemaError(f"expected schema version {step.version - 1}, got {version}")
            conn.execute(pg_ddl(VERSION_TABLE))
            for statement in step.statements:
                conn.execute(pg_ddl(statement))
            conn.execute(
                "INSERT INTO schema_version(version, applied_at, summary) VALUES (%s, %s, %s)",
                (step.version, time.time(), step.summary),
            )
        applied.append(step.version)
    return applied
