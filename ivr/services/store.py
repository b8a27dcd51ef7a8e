"""SQLite store (WAL mode), written as the call goes so a killed process loses nothing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ivr.services.migrations import current_version, migrate


class Store:
    """One SQLite database shared by the services of a process (thread-safe).

    The services write SQL that both engines take (``?`` placeholders, ``ON CONFLICT``);
    :class:`ivr.services.pgstore.PgStore` runs the same services on PostgreSQL.
    """

    engine = "sqlite"
    IntegrityError: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self.upgraded = migrate(self._conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    @property
    def version(self) -> int:
        """The schema version of the database."""
        with self._lock:
            return current_version(self._conn)

    def backup(self, target: Path | str) -> None:
        """An online, consistent copy of the database to ``target`` (SQLite's backup API).

        The pages are copied in one step, inside one read transaction: in WAL mode writers
        (calls in progress, other processes) go on while the copy is made, and the copy holds
        the one consistent state the read began with. It is written beside ``target`` first
        and moved into place, so a failed backup never leaves a half-written file.
        """
        target = Path(target)
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        dest = sqlite3.connect(str(partial))
        try:
            with self._lock:
                self._conn.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode=DELETE")
            check = dest.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"expected a sound copy, got {check!r}")
        finally:
            dest.close()
        partial.replace(target)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_store(db: str | Path, *, home: Path) -> Store:
    """The store at ``db``: a SQLite file, or a ``postgresql://`` address (psycopg 3)."""
    if str(db).startswith(("postgresql://", "postgres://")):
        from ivr.services.pgstore import PgStore

        return PgStore(str(db), home=home)
    return Store(Path(db))
