"""Fixtures of the desk tests: a database, the people, a running desk, a browser."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.agents.directory import Agent
from ivr.services.store import Store
from tests.desk.helpers import CHROMIUM_ARGS, DeskProcess, add_people, start_desk

CHROMIUM = Path("/usr/bin/chromium")


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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium (installed here if missing, like the SIP peers; never downloaded
    by Playwright), headless."""
    if not CHROMIUM.exists():
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            timeout=900,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
