"""Debian's Chromium, headless, for the web pages' tests (never a browser Playwright downloads).

One Playwright instance per test session: two sync Playwright instances in one thread
refuse to run, so every page test (agent desk, QA report) shares the session's browser.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAUNCH_TIMEOUT_MS: Final = 30000


def chromium() -> Iterator[Any]:
    """A launched headless Chromium (installed with apt-get when missing, like the SIP peers)."""
    if not CHROMIUM.exists():
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            timeout=900,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        yield browser
        browser.close()
