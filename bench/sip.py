"""SIP under load: `ivr serve` answering N calls at once that stream caller speech.

Every caller says "ticket status" at the main menu (the grammar decoder, with Whisper's
second opinion when it is unsure) and then, over or after the ticket-number prompt, a
ticket number (Whisper alone). Two ways the calls come:

* all at once: N calls start in the same second, so every caller speaks at the same moment
  as the others (N in 1, 10, 20, 30 and 50);
* spread: calls arrive evenly, N in every call's length (28 s), 2N in all, so that N are in
  progress at once and their answers fall at different moments, as on a real line (N in
  10, 20, 30 and 40).

For each: turn latency p50/p95 (from the call records) per kind of ask, the caller's whole
wait after the ticket number (the endpointer's silence included), how many menu answers
and ticket numbers were heard right (and menu answers taken for another choice), CPU
seconds per call-minute (of the serving process and its recognition processes), memory
per extra call over the warm idle server (RSS of the serving process; PSS of it and its
recognition processes), and whether every call was answered and recorded. A first round
of ten calls at once, not counted, fills the prompt cache with every prompt the calls
reach. Writes bench/sip.json; prints tables for the README.

    python bench/sip.py                       # every level, written to bench/sip.json
    python bench/sip.py 1 10 --spread 20      # some levels, printed only
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.config import load_settings  # noqa: E402
from ivr.dialog.prompt_cache import build_cache  # noqa: E402
from ivr.dialog.prompts import mask_digits  # noqa: E402
from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.speech.audio import ulaw_encode  # noqa: E402
from ivr.speech.tts import Synthesizer  # noqa: E402
from tests.helpers import children  # noqa: E402
from tests.sip.peers import Scenario, run_sipp, start_ivr  # noqa: E402

CALL_S = 28
LEVELS = (1, 10, 20, 30, 50)
SPREAD_LEVELS = (10, 20, 30, 40)
WARM_UP = 10
TICKET = "20261120"
TICKET_SAID = "two zero two six, one one two zero"
LEAD_S = 12  # the welcome, then "ticket status" said over the menu prompt (barge-in)
GAP_S = 6  # the ticket-number prompt plays meanwhile


def proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident memory in bytes of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = int(fields[21]) * 4096
    return ticks / 100.0, rss


def cpu_tree(pid: int) -> float:
    """CPU seconds of a process and its children (recognition workers, decoder hosts)."""
    try:
        own = proc_stats(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return own + sum(cpu_tree(child) for child in children(pid))


def pss(pid: int) -> int:
    """Proportional set size in bytes of a process and its children (the recognition
    workers and grammar decoder hosts): pages shared between processes, or mapped more
    than once (each PocketSphinx decoder maps its model's files), counted by share."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0  # a process that ended meanwhile
    return total + sum(pss(child) for child in children(pid))


def _role(pid: int, root: int) -> str:
    """Which of the server's processes ``pid`` is, by what it has mapped."""
    if pid == root:
        return "serving"
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return "other"
    if "ctranslate2" in maps:
        return "whisper workers"
    if "libespeak-ng" in maps:
        return "voice (espeak-ng)"
    return "grammar hosts" if "pocketsphinx" in maps else "other"


def pss_by_role(root: int) -> dict[str, int]:
    """PSS in bytes of the server and its children, summed per kind of process."""
    out: dict[str, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            own = sum(
                int(line.split()[1]) * 1024
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                if line.startswith("Pss:")
            )
        except (FileNotFoundError, ProcessLookupError):
            continue
        role = _role(pid, root)
        out[role] = out.get(role, 0) + own
        todo += children(pid)
    return out


def run_level(
    n: int, home: Path, work: Path, audio: Path, *, spread: bool = False
) -> dict[str, float | int | bool]:
    """N calls at once, or (``spread``) 2N arriving evenly, N per call length."""
    total = 2 * n if spread else n
    t0 = time.monotonic()
    server = start_ivr(home, work, "--max-calls", str(max(LEVELS) + 10))
    ready_s = time.monotonic() - t0
    try:
        # idle means warm: the Whisper workers measured while they still load and decode
        # their first utterance made every level's baseline, and so its growth, a lottery
        server.wait_log("speech recognition ready", 120)
        time.sleep(1.0)
        _, rss0 = proc_stats(server.proc.pid)
        cpu0 = cpu_tree(server.proc.pid)
        scenario = Scenario().invite().audio(audio).pause(CALL_S * 1000).bye()
        peak = rss0
        pss0 = pss_peak = pss(server.proc.pid)
        roles0 = pss_by_role(server.proc.pid)
        roles_peak = dict(roles0)
        result_holder: dict[str, object] = {}

        import threading

        def sipp() -> None:
            result_holder["r"] = run_sipp(
                scenario.xml(),
                server.port,
                work,
                calls=total,
                rate=n,
                rate_period_ms=CALL_S * 1000 if spread else 1000,
                limit=n,
                timeout=(2 * CALL_S if spread else CALL_S) + 60,
            )

        thread = threading.Thread(target=sipp)
        thread.start()
        while thread.is_alive():
            peak = max(peak, proc_stats(server.proc.pid)[1])
            pss_peak = max(pss_peak, pss(server.proc.pid))
            for role, size in pss_by_role(server.proc.pid).items():
                roles_peak[role] = max(roles_peak.get(role, 0), size)
            time.sleep(0.5)
        cpu1 = cpu_tree(server.proc.pid)
        rows = server.wait_records(total, timeout=60)
        import sqlite3

        conn = sqlite3.connect(server.db)
        turns = conn.execute(
            "SELECT ask, latency_ms, value, wait_ms FROM turns WHERE latency_ms IS NOT NULL"
        ).fetchall()
        conn.close()
        lat = [t[1] for t in turns]
        menu_turns = [t for t in turns if t[0] == "main_menu"]
        menu = [t[1] for t in menu_turns]
        ticket = [t for t in turns if t[0] == "ticket_number"]
        result = result_holder["r"]
        return {
            "calls": n,
            "arrival": "spread" if spread else "at once",
            "calls_in_all": total,
            "all_answered_and_recorded": bool(
                getattr(result, "returncode", 1) == 0
                and len(rows) == total
                and all(r["ended_at"] for r in rows)
            ),
            "turns": len(lat),
            "turn_latency_p50_ms": _percentile(lat, 50),
            "turn_latency_p95_ms": _percentile(lat, 95),
            "menu_turns": len(menu),
            "menu_heard_right": sum(t[2] == "ticket_status" for t in menu_turns),
            # another choice: the caller is sent into a flow they did not ask for
            "menu_heard_wrong": sum(t[2] not in (None, "ticket_status") for t in menu_turns),
            "menu_latency_p95_ms": _percentile(menu, 95),
            "ticket_turns": len(ticket),
            "ticket_heard_right": sum(t[2] == mask_digits(TICKET) for t in ticket),  # as stored
            "ticket_latency_p50_ms": _percentile([t[1] for t in ticket], 50),
            "ticket_latency_p95_ms": _percentile([t[1] for t in ticket], 95),
            # from the caller's last digit to the reply: the endpointer's wait, then the reply
            "ticket_wait_p50_ms": _percentile([t[3] for t in ticket], 50),
            "ticket_wait_p95_ms": _percentile([t[3] for t in ticket], 95),
            "cpu_s_per_call_minute": (cpu1 - cpu0) / (total * CALL_S / 60),
            "rss_mb_growth": (peak - rss0) / 2**20,  # over the idle server, at the peak
            "rss_mb_idle": rss0 / 2**20,
            "pss_mb_growth": (pss_peak - pss0) / 2**20,
            # each kind of process at its own peak, over its idle size
            "pss_mb_growth_by_process": {
                role: (size - roles0.get(role, 0)) / 2**20 for role, size in roles_peak.items()
            },
            "ready_s": ready_s,
        }
    finally:
        server.stop()


def per_extra_call(results: list[dict[str, float | int | bool]]) -> None:
    """What each call beyond the first adds: the growth at N calls less the growth at one,
    over N - 1 (the first call also loads what the process keeps for every call: the
    grammar decoder's lexicon, the endpointer's model, prompts). NaN without a 1-call run."""
    for kind in ("rss", "pss"):
        one = next((r[f"{kind}_mb_growth"] for r in results if r["calls"] == 1), float("nan"))
        for r in results:
            n = int(r["calls"])
            r[f"{kind}_mb_per_extra_call"] = (
                (float(r[f"{kind}_mb_growth"]) - float(one)) / (n - 1) if n > 1 else float("nan")
            )


def _mb(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} MB"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"  # NaN: no such turn at this load


def _percentile(values: list[float | None], q: float) -> float:
    """The q-th percentile of the known values (NaN when there are none)."""
    known = [v for v in values if v is not None]
    return float(np.percentile(known, q)) if known else float("nan")


def _levels(args: list[str]) -> tuple[list[int], list[int]]:
    """At-once levels, then ``--spread`` levels; none given: every level of both."""
    if not args:
        return list(LEVELS), list(SPREAD_LEVELS)
    at_once = args[: args.index("--spread")] if "--spread" in args else args
    spread = args[args.index("--spread") + 1 :] if "--spread" in args else []
    return [int(a) for a in at_once], [int(a) for a in spread]


def _table(results: list[dict[str, float | int | bool]], first: str) -> None:
    print(
        f"| {first} | all answered and recorded | menu heard right / wrong | menu reply p95 "
        "| ticket number (Whisper) reply p50 / p95 | caller's wait after the last digit p50 / p95 "
        "| ticket numbers heard right "
        "| CPU s per call-minute | RSS / PSS growth | RSS / PSS per call beyond the first |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['calls']} | {'yes' if r['all_answered_and_recorded'] else 'NO'} "
            f"| {r['menu_heard_right']} / {r.get('menu_heard_wrong', '-')} of {r['menu_turns']} "
            f"| {r['menu_latency_p95_ms']:.0f} ms "
            f"| {_ms(r['ticket_latency_p50_ms'])} / {_ms(r['ticket_latency_p95_ms'])} ms "
            f"| {_ms(r['ticket_wait_p50_ms'])} / {_ms(r['ticket_wait_p95_ms'])} ms "
            f"| {r['ticket_heard_right']} / {r['ticket_turns']} "
            f"| {r['cpu_s_per_call_minute']:.2f} "
            f"| {r['rss_mb_growth']:.0f} / {r['pss_mb_growth']:.0f} MB "
            f"| {_mb(r['rss_mb_per_extra_call'])} / {_mb(r['pss_mb_per_extra_call'])} |"
        )


def main() -> None:
    at_once, spread = _levels(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        menu = caller_speech("ticket status").to_rate(8000).samples
        ticket = caller_speech(TICKET_SAID).to_rate(8000).samples
        loop = np.concatenate(
            [
                np.zeros(8000 * LEAD_S, np.int16),
                menu,
                np.zeros(8000 * GAP_S, np.int16),
                ticket,
                np.zeros(8000 * 4, np.int16),
            ]  # the stream loops: the next "ticket status" would come after the call
        )
        audio = work / "caller.ulaw"
        audio.write_bytes(ulaw_encode(loop))
        # as a line is deployed: every English prompt in the cache at the phone's rate (else
        # the voice makes the ones the warm-up did not need, a re-prompt, during the calls)
        settings = load_settings(home=home)
        build_cache(
            settings, Synthesizer(settings.cache_dir / "prompts"), ["en-US"], sample_rates=(8000,)
        )
        run_level(WARM_UP, home, work, audio)  # not counted: loads and warms the engines
        results = [run_level(n, home, work, audio) for n in at_once]
        results += [run_level(n, home, work, audio, spread=True) for n in spread]
    per_extra_call(results)
    out = REPO / "bench" / "sip.json"
    everything = (at_once, spread) == (list(LEVELS), list(SPREAD_LEVELS))
    if everything:
        out.write_text(json.dumps(results, indent=2))
    if at_once:
        print("All at once:\n")
        _table([r for r in results if r["arrival"] == "at once"], "concurrent SIP calls")
    if spread:
        print("\nSpread (2N calls arriving evenly, N in progress at once):\n")
        _table([r for r in results if r["arrival"] == "spread"], "calls in progress")
    print("\nPSS growth by process, each at its own peak:\n")
    roles = sorted({k for r in results for k in r["pss_mb_growth_by_process"]})  # type: ignore[union-attr]
    print("| calls | arrival | " + " | ".join(roles) + " |\n|---|---|" + "---|" * len(roles))
    for r in results:
        by = r["pss_mb_growth_by_process"]
        cells = [f"{by.get(k, 0.0):.0f} MB" for k in roles]  # type: ignore[union-attr]
        print(f"| {r['calls']} | {r['arrival']} | " + " | ".join(cells) + " |")
    print(f"\n`ivr serve` ready to answer in {results[-1]['ready_s']:.1f} s (prompt cache warm)")
    if everything:
        print(f"written to {out}")


if __name__ == "__main__":
    main()
