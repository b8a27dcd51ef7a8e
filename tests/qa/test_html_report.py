"""The HTML report in a real headless Chromium (Debian `chromium`), from disk and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.httpd import serve_folder
from tests.qa.conftest import SuiteRun

WAIT_MS = 15000
AUDIO_DURATION_JS = """() => new Promise((resolve) => {
  const audio = document.querySelector('audio#recording');
  if (!audio) { resolve(-1); return; }
  const done = () => resolve(isFinite(audio.duration) ? audio.duration : -2);
  if (audio.readyState >= 1) { done(); return; }
  audio.addEventListener('loadedmetadata', done);
  audio.addEventListener('error', () => resolve(-3));
  audio.load();
})"""


@pytest.fixture(scope="module")
def served(suite_run: SuiteRun) -> Iterator[str]:
    """The report folder over HTTP on loopback, as a CI artifact server would show it."""
    with serve_folder(suite_run.html) as url:
        yield url + "/"


def _check_report(browser: Any, index_url: str) -> None:
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(index_url)
        assert page.locator("#passed").inner_text() == "3"
        assert page.locator("#failed").inner_text() == "1"
        assert page.locator("#p95").inner_text().endswith(" ms")
        failed_row = page.locator("#calls tr.fail")
        assert failed_row.count() == 1
        failed_row.locator("a").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text().startswith("FAIL")
        unmet = page.locator("#expect tr.failed-expectation")
        assert unmet.count() == 1
        assert unmet.locator("td").first.inner_text() == "outcome"
        assert "NOT MET" in unmet.inner_text()
        colour = unmet.evaluate("el => getComputedStyle(el).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")  # highlighted
        assert page.locator("#failures li").first.inner_text().startswith("outcome: expected")
        assert page.locator("#turns tr.ivr").count() >= 3  # what the IVR said
        assert page.locator("#turns tr.caller").count() == 5  # one row per turn
        duration = page.evaluate(AUDIO_DURATION_JS)
        assert duration > 1.0, f"the audio element has no duration ({duration})"
    finally:
        page.close()


def test_report_from_disk_in_chromium(browser: Any, suite_run: SuiteRun) -> None:
    _check_report(browser, (suite_run.html / "index.html").as_uri())


def test_report_over_http_in_chromium(browser: Any, served: str) -> None:
    _check_report(browser, served + "index.html")


def test_call_pages_hold_no_codes_in_clear(suite_run: SuiteRun) -> None:
    for page in suite_run.html.glob("*.html"):
        text = page.read_text()
        assert "482913" not in text and "13800138000" not in text, page.name
