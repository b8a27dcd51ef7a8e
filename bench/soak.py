"""Soak: `ivr serve` under calls arriving at random for a long time (a benchmark, not a test).

Calls arrive as a Poisson process at about 80 % of the measured capacity (the SIP load
table in the README: about 10 calls speaking at once on 2 cores), so that on average
``0.8 * capacity`` calls are in progress. Each call is one SIPp caller, drawn from a mix:
account recovery by keys to its end, speech at the main menu then a hang-up mid-call,
keys then a hang-up mid-call, a content review by keys to its end. Every few seconds the
server's resident memory, open files and threads are sampled; their slopes (after a
warm-up) say whether anything leaks. At the end: every call has a complete record, the
store passes its checks, and the server's log holds no error.

    python bench/soak.py [--minutes 10] [--capacity 10] [--load 0.8] [--seed 1]

Writes bench/soak.json and prints the README table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.services.integrity import check_store  # noqa: E402
from ivr.services.store import Store  # noqa: E402
from ivr.speech.audio import ulaw_encode  # noqa: E402
from tests.sip.peers import Scenario, free_port, start_ivr  # noqa: E402
from tests.sip.test_sipp import RECOVERY_KEYS  # noqa: E402

SAMPLE_S = 5.0
WARM_UP_S = 60.0
MIX = (("keys", 0.3), ("speech", 0.3), ("hangup", 0.2), ("content", 0.2))
CONTENT_REVIEW = "3" + "1" + "2" + "1" + "2"
CALLERS = [f"1380013{n:04d}" for n in range(500)]  # each a known account (codes per number)
FIXTURES = (
    "fixtures:\n  accounts:\n"
    + "".join(f'    - {{phone: "{p}", name: "Caller"}}\n' for p in CALLERS)
    + '  verification_code: "482913"\n'
)


def scenario(kind: str, rng: random.Random, audio: Path) -> str:
    caller = Scenario(caller=rng.choice(CALLERS))
    if kind == "keys":
        return caller.invite().keys(RECOVERY_KEYS).wait_bye().xml()
    if kind == "content":
        return caller.invite().keys(CONTENT_REVIEW).wait_bye().xml()
    if kind == "speech":
        stay = rng.randint(8000, 30000)
        return caller.invite().audio(audio).pause(stay).bye().xml()
    stay = rng.randint(2000, 15000)
    return caller.invite().keys("1").pause(stay).bye().xml()


def start_caller(xml: str, port: int, work: Path) -> subprocess.Popen[str]:
    path = work / f"soak-{uuid.uuid4().hex[:8]}.xml"
    path.write_text(xml)
    return subprocess.Popen(
        [
            "sipp",
            f"127.0.0.1:{port}",
            "-sf",
            str(path),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port(span=6)),  # one call: SIPp's media pair and the call's audio pair
            "-timeout",
            "240s",
            "-timeout_error",
            "-nostdin",
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
    }


def slope_per_10_min(samples: list[dict[str, float]], key: str) -> float:
    """Growth per 10 minutes at a constant number of calls in progress: a least-squares fit
    of ``key`` on time and on the calls in progress (each call holds its thread, sockets
    and buffers while it lasts; what remains in the time term is what accumulates)."""
    if len(samples) < 4:
        return float("nan")
    x = np.array([[1.0, s["t"], s["calls"]] for s in samples])
    y = np.array([s[key] for s in samples])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(coef[1] * 600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--capacity", type=float, default=10.0, help="calls at once (README)")
    parser.add_argument("--load", type=float, default=0.8, help="share of the capacity")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    target = args.capacity * args.load  # calls in progress on average
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        fixtures = work / "fixtures.yaml"
        fixtures.write_text(FIXTURES)
        speech = caller_speech("ticket status").to_rate(8000).samples
        loop = np.concatenate([np.zeros(8000 * 2, np.int16), speech, np.zeros(8000 * 3, np.int16)])
        audio = work / "caller.ulaw"
        audio.write_bytes(ulaw_encode(loop))
        server = start_ivr(home, work, "--fixtures", str(fixtures), "--max-calls", "60")
        callers: list[tuple[subprocess.Popen[str], float]] = []
        durations: list[float] = [35.0]  # a first guess of a call's length, then measured
        samples: list[dict[str, float]] = []
        in_progress: list[int] = []
        launched = {kind: 0 for kind, _ in MIX}
        began = time.monotonic()
        end = began + args.minutes * 60
        next_call = began
        next_sample = began
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_call:
                    kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
                    launched[kind] += 1
                    callers.append(
                        (start_caller(scenario(kind, rng, audio), server.port, work), now)
                    )
                    rate = target / (sum(durations[-50:]) / len(durations[-50:]))  # Little's law
                    next_call = now + rng.expovariate(rate)
                if now >= next_sample:
                    calls_now = sum(p.poll() is None for p, _ in callers)
                    samples.append(
                        {"t": now - began, "calls": calls_now, **sample(server.proc.pid)}
                    )
                    in_progress.append(calls_now)
                    next_sample = now + SAMPLE_S
                for proc, started in callers:
                    if proc.poll() is not None and started >= 0:
                        durations.append(time.monotonic() - started)
                callers = [(p, -1.0 if p.poll() is not None else s) for p, s in callers]
                time.sleep(0.05)
            deadline = time.monotonic() + 300  # the calls in progress finish
            while any(p.poll() is None for p, _ in callers) and time.monotonic() < deadline:
                time.sleep(0.5)
            for proc, _ in callers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
            time.sleep(5)
            samples.append({"t": time.monotonic() - began, "calls": 0, **sample(server.proc.pid)})
        finally:
            stopped = server.stop()
        conn = sqlite3.connect(server.db)
        conn.row_factory = sqlite3.Row
        rows = list(conn.execute("SELECT * FROM calls"))
        outcomes: dict[str, int] = {}
        for r in rows:
            outcomes[str(r["outcome"])] = outcomes.get(str(r["outcome"]), 0) + 1
        turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        latencies = [
            r[0] for r in conn.execute("SELECT latency_ms FROM turns WHERE latency_ms IS NOT NULL")
        ]
        conn.close()
        store = Store(server.db)
        problems = check_store(store)
        store.close()
        log = server.log.read_text(errors="replace")
        errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
        callers_total = sum(launched.values())
        warm = [s for s in samples if s["t"] >= WARM_UP_S]
        result: dict[str, Any] = {
            "minutes": args.minutes,
            "capacity": args.capacity,
            "load": args.load,
            "calls_placed": callers_total,
            "calls_by_kind": launched,
            "calls_recorded": len(rows),
            "calls_complete": sum(1 for r in rows if r["ended_at"] is not None and r["outcome"]),
            "outcomes": outcomes,
            "turns": turns,
            "turn_latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else math.nan,
            "turn_latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else math.nan,
            "mean_calls_in_progress": float(np.mean(in_progress)) if in_progress else 0.0,
            "store_problems": problems,
            "log_errors": errors[:20],
            "server_exit": stopped,
            "rss_mb": [round(samples[0]["rss_mb"], 1), round(samples[-1]["rss_mb"], 1)],
            "open_files": [samples[0]["open_files"], samples[-1]["open_files"]],
            "threads": [samples[0]["threads"], samples[-1]["threads"]],
            "rss_mb_per_10_min": slope_per_10_min(warm, "rss_mb"),
            "open_files_per_10_min": slope_per_10_min(warm, "open_files"),
            "threads_per_10_min": slope_per_10_min(warm, "threads"),
            "rss_mb_after_warm_up": round(warm[0]["rss_mb"], 1) if warm else math.nan,
            "samples": samples,
        }
    out = REPO / "bench" / "soak.json"
    out.write_text(json.dumps(result, indent=2))
    r = result
    print(
        "| minutes | calls placed / recorded / complete | calls at once (mean)"
        " | turn latency p50 / p95 | RSS start → end (slope / 10 min) | open files (slope)"
        " | threads (slope) | log errors | store checks |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {r['minutes']:g} | {r['calls_placed']} / {r['calls_recorded']} / {r['calls_complete']} "
        f"| {r['mean_calls_in_progress']:.1f} "
        f"| {r['turn_latency_p50_ms']:.0f} / {r['turn_latency_p95_ms']:.0f} ms "
        f"| {r['rss_mb'][0]:.0f} → {r['rss_mb'][1]:.0f} MB ({r['rss_mb_per_10_min']:+.1f} MB) "
        f"| {r['open_files'][0]} → {r['open_files'][1]} ({r['open_files_per_10_min']:+.1f}) "
        f"| {r['threads'][0]} → {r['threads'][1]} ({r['threads_per_10_min']:+.1f}) "
        f"| {len(errors)} | {'ok' if not problems else len(problems)} |"
    )
    print(f"outcomes: {outcomes}; by kind: {launched}")
    print(f"written to {out}")
    ok = not problems and not errors and r["calls_complete"] == r["calls_recorded"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
