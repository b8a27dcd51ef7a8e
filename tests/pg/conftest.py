"""One PostgreSQL server for the PostgreSQL tests, a fresh database for each test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg.server import PgServer, start


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    # its own folder in the system's temporary directory: pytest's folders are private to
    # the user running the tests, and the server runs as another one
    workdir = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
    try:
        server = start(workdir)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    return pg_server.new_database()
