"""A real PostgreSQL server for the tests: Debian's `postgresql`, initialised in a temporary
directory and run as an unprivileged user (``postgres`` when the tests run as root), on a
free port on 127.0.0.1, stopped by its own process id."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.sip.peers import free_port

USER = "ivr"  # the database superuser initdb creates (trust authentication, loopback only)


def _bin(name: str) -> Path:
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        if (version / "bin" / name).exists():
            return version / "bin" / name
    raise RuntimeError(f"PostgreSQL's {name} not found: install the Debian package postgresql")


@dataclass
class PgServer:
    proc: subprocess.Popen[str]
    port: int
    data: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start(workdir: Path) -> PgServer:
    """initdb and start a server under ``workdir`` (as ``postgres`` when we are root)."""
    as_user: str | None = None
    if os.geteuid() == 0:
        as_user = "postgres"
        owner = pwd.getpwnam(as_user)
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    data = workdir / "data"
    sockets = workdir / "sockets"
    for folder in (data, sockets):
        folder.mkdir()
        if as_user is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
    init = subprocess.run(
        [
            str(_bin("initdb")),
            "-D",
            str(data),
            "-U",
            USER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        user=as_user,
        check=False,
    )
    if init.returncode != 0:
        raise AssertionError(f"initdb failed: {init.stdout}{init.stderr}")
    port = free_port()
    log = (workdir / "postgres.log").open("w")
    proc = subprocess.Popen(
        [
            str(_bin("postgres")),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(sockets),
            "-F",
            "-c",
            "max_connections=50",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        user=as_user,
    )
    log.close()
    server = PgServer(proc, port, data)
    import psycopg

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(server.dsn(), connect_timeout=2).close()
            return server
        time.sleep(0.2)
    server.stop()
    raise AssertionError("PostgreSQL did not start:\n" + (workdir / "postgres.log").read_text())
