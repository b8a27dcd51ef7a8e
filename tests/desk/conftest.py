"""Fixtures of the desk tests: a database, the people, a running desk, a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.agents.directory import Agent
from ivr.services.store import Store
from tests.desk.helpers import DeskProcess, add_people, start_desk


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ivr.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


@pytest.fixture
def people(store: Store) -> dict[str, Agent]:
    return add_people(store)


@pytest.fixture
def desk(db: Path, store: Store, people: dict[str, Agent], tmp_path: Path) -> Iterator[DeskProcess]:
    server = start_desk(db, tmp_path, tmp_path / "home")
    yield server
    server.stop()
