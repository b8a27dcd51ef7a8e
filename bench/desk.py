"""The agent desk: how soon a transfer shows in a connected browser, and how many queue pages
a desk serves per second with 1,000 cases stored.

* transfer to screen: a case is queued the way the IVR's transfer queues it (in this
  process, as `ivr serve` does in its own), and the time until its row is in the live queue
  of an agent's page in headless Chromium (no reload), 30 times: p50/p95;
* queue pages: 1,000 waiting cases stored, GET / by a logged-in agent from 4 client threads
  for 10 s against one `ivr desk` process: pages per second.

Writes bench/desk.json; prints a table for the README.

    python bench/desk.py
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.services.store import Store  # noqa: E402
from tests.browser import chromium  # noqa: E402
from tests.desk.helpers import (  # noqa: E402
    PASSWORD,
    Http,
    add_people,
    start_desk,
    transferred_call,
)

ROUNDS = 30
CASES = 1000
CLIENTS = 4
LOAD_S = 10.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def transfer_to_screen(url: str, store: Store) -> list[float]:
    out: list[float] = []
    with contextlib.contextmanager(chromium)() as browser:  # the tests' headless Chromium
        page = browser.new_page()
        page.set_default_timeout(10000)
        page.goto(f"{url}/login")
        page.fill("#name", "alice")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#queue")
        page.wait_for_timeout(500)  # the event stream is connected
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            case = transferred_call(store)
            page.wait_for_selector(f'#waiting tr[data-case="{case}"]', timeout=10000)
            out.append((time.perf_counter() - t0) * 1000)
            page.wait_for_timeout(200)
        page.close()
    return out


def queue_pages(port: int, store: Store) -> float:
    while len(store.query("SELECT id FROM agent_queue WHERE status = 'waiting'")) < CASES:
        transferred_call(store)
    client = Http(port)
    client.login("bob")
    assert client.get("/").status == 200
    counts = [0] * CLIENTS
    stop = time.monotonic() + LOAD_S

    def worker(i: int) -> None:
        mine = Http(port, dict(client.cookies))
        while time.monotonic() < stop:
            assert mine.get("/").status == 200
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LOAD_S + 30)
    return sum(counts) / LOAD_S


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "ivr.sqlite3"
        store = Store(db)
        add_people(store)
        desk = start_desk(db, work, work / "home")
        try:
            latencies = transfer_to_screen(desk.url, store)
            pages = queue_pages(desk.port, store)
        finally:
            desk.stop()
            store.close()
    result = {
        "transfer_to_screen_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 95), 1),
            "rounds": ROUNDS,
        },
        "queue_pages_per_s": {"cases": CASES, "clients": CLIENTS, "pages_per_s": round(pages, 1)},
    }
    (REPO / "bench" / "desk.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| desk | value |\n| --- | --- |")
    print(
        f"| transfer → case in the browser | p50 {result['transfer_to_screen_ms']['p50']} ms, "
        f"p95 {result['transfer_to_screen_ms']['p95']} ms |"
    )
    print(f"| queue page, {CASES} cases stored | {pages:.1f} pages/s |")


if __name__ == "__main__":
    main()
