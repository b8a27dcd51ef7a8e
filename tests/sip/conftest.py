"""SIP tests run against real peers on 127.0.0.1; the test setup installs them if missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PEERS = {"sipp": "sip-tester", "baresip": "baresip-core", "kamailio": "kamailio"}


@pytest.fixture(scope="session", autouse=True)
def sip_peers() -> None:
    missing = [
        pkg
        for exe, pkg in PEERS.items()
        if shutil.which(exe) is None and not Path(f"/usr/sbin/{exe}").exists()
    ]
    if missing:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            timeout=600,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
