"""SIP under load: `ivr serve` answering N calls at once that stream caller speech.

Two mixes of asks, each caller's audio one stream (SIPp loops it):

* speech (the default): every caller says "ticket status" at the main menu (the grammar
  decoder and Whisper's second opinion) and then, over or after the
  ticket-number prompt, a ticket number (Whisper alone); each call lasts 28 s;
* keys: the same "ticket status", then the ticket number on the keypad (in-band tones,
  as a phone without telephone-events sends them), then "yes" at the read-back (the
  grammar decoder and its second opinion again); each call lasts 32 s. No Whisper-alone
  ask: what a line holds when callers key their numbers.

Two ways the calls come:

* all at once: N calls start in the same second, so every caller speaks at the same moment
  as the others (speech: N in 1, 10, 20, 30 and 50; keys: 1, 20, 40 and 60);
* spread: calls arrive evenly, N in every call's length, 2N in all, so that N are in
  progress at once and their answers fall at different moments, as on a real line
  (speech: N in 10, 20, 30, 40, 50 and 60; keys: 20, 30, 40 and 60).

For each: turn latency p50/p95 (from the call records) per kind of ask, the caller's whole
wait after the ticket number (the endpointer's silence included), how many answers were
heard right (and menu or read-back answers taken for another one), CPU seconds per
call-minute (of the serving process and its recognition processes), memory per extra call
over the warm idle server (RSS of the serving process; PSS of it and its recognition
processes), and whether every call was answered and recorded. A first round of ten calls
at once, not counted, loads and warms the engines. Writes bench/sip.json (a mix run alone
replaces that mix's rows and keeps the other's); prints tables for the README.

    python bench/sip.py                       # both mixes, every level, to bench/sip.json
    python bench/sip.py --mix keys            # one mix, every level, to bench/sip.json
    python bench/sip.py 1 10 --spread 20      # some levels (speech), printed only
    python bench/sip.py --mix keys 60         # some levels of a mix, printed only
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.config import load_settings  # noqa: E402
from ivr.dialog.prompt_cache import build_cache  # noqa: E402
from ivr.dialog.prompts import mask_digits  # noqa: E402
from ivr.qa.synth import caller_speech  # noqa: E402
from ivr.speech.audio import ulaw_encode  # noqa: E402
from ivr.speech.dtmf import tone  # noqa: E402
from ivr.speech.tts import Synthesizer  # noqa: E402
from tests.helpers import children  # noqa: E402
from tests.sip.peers import Scenario, run_sipp, start_ivr  # noqa: E402

WARM_UP = 10
TICKET = "20261120"
TICKET_SAID = "two zero two six, one one two zero"
LEAD_S = 12  # the welcome, then "ticket status" said over the menu prompt (barge-in)
GAP_S = 6  # the ticket-number prompt plays meanwhile
READ_BACK_S = 4.5  # from the last key to "yes": the read-back plays meanwhile
AUDIO_LATE = 0.98  # a call with less of its audio sent on time heard its prompts cut

Row = dict[str, Any]  # one level's results


@dataclass(frozen=True)
class Mix:
    """What every caller of a run says or keys, and the levels it is run at."""

    name: str
    call_s: int
    levels: tuple[int, ...]  # calls at once
    spread_levels: tuple[int, ...]  # calls in progress, arriving evenly
    events: bool  # telephone-events offered (keys then come in-band, inside the audio)


MIXES = {
    "speech": Mix("speech", 28, (1, 10, 20, 30, 50), (10, 20, 30, 40, 50, 60), events=True),
    "keys": Mix("keys", 32, (1, 20, 40, 60), (20, 30, 40, 60), events=False),
}


def _quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(8000 * seconds), np.int16)


def caller_audio(mix: Mix) -> np.ndarray:
    """One caller's whole stream at 8 kHz, from the call's answer on."""
    menu = caller_speech("ticket status").to_rate(8000).samples
    if mix.name == "speech":
        ticket = caller_speech(TICKET_SAID).to_rate(8000).samples
        # the stream loops: the next "ticket status" would come after the call
        return np.concatenate([_quiet(LEAD_S), menu, _quiet(GAP_S), ticket, _quiet(4)])
    keyed = np.concatenate([np.concatenate([tone(k, 8000, 120), _quiet(0.25)]) for k in TICKET])
    yes = caller_speech("yes").to_rate(8000).samples
    return np.concatenate(
        [_quiet(LEAD_S), menu, _quiet(GAP_S), keyed, _quiet(READ_BACK_S), yes, _quiet(30)]
    )


def proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident memory in bytes of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = int(fields[21]) * 4096
    return ticks / 100.0, rss


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


def _own_pss(pid: int) -> float:
    """Proportional set size in bytes: pages shared between processes, or mapped more than
    once (each PocketSphinx decoder maps its model's files), counted by share."""
    return sum(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        if line.startswith("Pss:")
    )


def by_role(root: int, measure: Callable[[int], float]) -> dict[str, float]:
    """``measure`` of the server and each of its children, summed per kind of process."""
    out: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            own = measure(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue  # a process that ended meanwhile
        role = _role(pid, root)
        out[role] = out.get(role, 0.0) + own
        todo += children(pid)
    return out


def pss_by_role(root: int) -> dict[str, float]:
    """PSS in bytes of the server and its children, summed per kind of process."""
    return by_role(root, _own_pss)


def cpu_by_role(root: int) -> dict[str, float]:
    """CPU seconds of the server and its children, summed per kind of process."""
    return by_role(root, lambda pid: proc_stats(pid)[0])


def run_level(
    n: int, mix: Mix, home: Path, work: Path, audio: Path, *, spread: bool = False
) -> Row:
    """N calls at once, or (``spread``) 2N arriving evenly, N per call length."""
    total = 2 * n if spread else n
    call_s = mix.call_s
    t0 = time.monotonic()
    server = start_ivr(home, work, "--max-calls", str(max(n, WARM_UP) + 10))
    ready_s = time.monotonic() - t0
    try:
        # idle means warm: the Whisper workers measured while they still load and decode
        # their first utterance made every level's baseline, and so its growth, a lottery
        server.wait_log("speech recognition ready", 120)
        time.sleep(1.0)
        _, rss0 = proc_stats(server.proc.pid)
        cpu_roles0 = cpu_by_role(server.proc.pid)
        scenario = Scenario().invite(events=mix.events).audio(audio).pause(call_s * 1000).bye()
        peak = rss0
        roles0 = pss_by_role(server.proc.pid)
        pss0 = pss_peak = sum(roles0.values())
        roles_peak = dict(roles0)
        result_holder: dict[str, object] = {}

        def sipp() -> None:
            result_holder["r"] = run_sipp(
                scenario.xml(),
                server.port,
                work,
                calls=total,
                rate=n,
                rate_period_ms=call_s * 1000 if spread else 1000,
                limit=n,
                timeout=(2 * call_s if spread else call_s) + 60,
            )

        thread = threading.Thread(target=sipp)
        thread.start()
        while thread.is_alive():
            peak = max(peak, proc_stats(server.proc.pid)[1])
            roles = pss_by_role(server.proc.pid)
            pss_peak = max(pss_peak, sum(roles.values()))
            for role, size in roles.items():
                roles_peak[role] = max(roles_peak.get(role, 0), size)
            time.sleep(0.5)
        cpu_roles1 = cpu_by_role(server.proc.pid)
        rows = server.wait_records(total, timeout=60)
        conn = sqlite3.connect(server.db)
        turns = conn.execute(
            "SELECT ask, latency_ms, value, wait_ms FROM turns WHERE latency_ms IS NOT NULL"
        ).fetchall()
        conn.close()
        lat = [t[1] for t in turns]
        menu_turns = [t for t in turns if t[0] == "main_menu"]
        menu = [t[1] for t in menu_turns]
        ticket = [t for t in turns if t[0] == "ticket_number"]
        read_back = [t for t in turns if t[0] == "confirm_ticket_number"]
        result = result_holder["r"]
        on_time = audio_on_time(server.log)
        return {
            "mix": mix.name,
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
            "read_back_turns": len(read_back),
            "read_back_heard_right": sum(t[2] == "yes" for t in read_back),
            "read_back_heard_wrong": sum(t[2] not in (None, "yes") for t in read_back),
            "read_back_latency_p95_ms": _percentile([t[1] for t in read_back], 95),
            # the media clock: a call whose prompts went out stretched and cut is not served,
            # however quick its replies
            "audio_on_time_worst": min(on_time, default=float("nan")),
            "calls_audio_late": sum(v < AUDIO_LATE for v in on_time),
            "cpu_s_per_call_minute": (sum(cpu_roles1.values()) - sum(cpu_roles0.values()))
            / (total * call_s / 60),
            "cpu_s_per_call_minute_by_process": {
                role: (spent - cpu_roles0.get(role, 0.0)) / (total * call_s / 60)
                for role, spent in cpu_roles1.items()
            },
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


def audio_on_time(log: Path) -> list[float]:
    """Each ended call's share of its audio sent on time, from the server's log."""
    shares = []
    for line in log.read_text(errors="replace").splitlines():
        if '"event": "call_ended"' in line:
            share = json.loads(line.split(": ", 1)[1]).get("audio_on_time")
            if share is not None:
                shares.append(float(share))
    return shares


def per_extra_call(results: list[Row]) -> None:
    """What each call beyond the first adds: the growth at N calls less the growth at one
    (of the same mix), over N - 1 (the first call also loads what the process keeps for
    every call: the grammar decoder's lexicon, the endpointer's model, prompts). NaN
    without a 1-call run."""
    for kind in ("rss", "pss"):
        for r in results:
            one = next(
                (
                    o[f"{kind}_mb_growth"]
                    for o in results
                    if o["calls"] == 1 and o.get("mix", "speech") == r.get("mix", "speech")
                ),
                float("nan"),
            )
            n = int(r["calls"])
            r[f"{kind}_mb_per_extra_call"] = (
                (float(r[f"{kind}_mb_growth"]) - float(one)) / (n - 1) if n > 1 else float("nan")
            )


def _mb(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} MB"


def _clock(r: Row) -> str:
    """The worst call's share of its audio sent on time, and how many calls had too little."""
    worst = r.get("audio_on_time_worst", math.nan)
    return "-" if math.isnan(worst) else f"{worst:.1%}, {r['calls_audio_late']}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"  # NaN: no such turn at this load


def _percentile(values: list[float | None], q: float) -> float:
    """The q-th percentile of the known values (NaN when there are none)."""
    known = [v for v in values if v is not None]
    return float(np.percentile(known, q)) if known else float("nan")


def _arguments(args: list[str]) -> tuple[list[Mix], list[int], list[int], bool]:
    """The mixes, the at-once levels and the ``--spread`` levels to run, and whether they
    are every level of their mixes (then written to bench/sip.json)."""
    if "-h" in args or "--help" in args:
        print(__doc__)
        raise SystemExit(0)
    mixes = list(MIXES.values())
    if "--mix" in args:
        at = args.index("--mix")
        name = args[at + 1] if at + 1 < len(args) else ""
        if name not in MIXES:
            raise SystemExit(f"--mix takes one of: {', '.join(MIXES)}")
        mixes = [MIXES[name]]
        args = args[:at] + args[at + 2 :]
    if not args:
        return mixes, [], [], True
    if len(mixes) > 1:
        mixes = [MIXES["speech"]]
    at_once = args[: args.index("--spread")] if "--spread" in args else args
    spread = args[args.index("--spread") + 1 :] if "--spread" in args else []
    if not all(a.isdigit() and int(a) > 0 for a in at_once + spread):
        raise SystemExit(f"levels are numbers of calls, got {' '.join(at_once + spread)}")
    return mixes, [int(a) for a in at_once], [int(a) for a in spread], False


COLUMNS = {  # a mix's own columns, between the menu's and the load's
    "speech": (
        "ticket number (Whisper) reply p50 / p95",
        "caller's wait after the last digit p50 / p95",
        "ticket numbers heard right",
    ),
    "keys": (
        "ticket numbers keyed, heard right",
        "ticket number reply p95",
        'read-back "yes" heard right / wrong',
        "read-back reply p95",
    ),
}


def _mix_cells(r: Row) -> list[str]:
    if r.get("mix") == "keys":
        return [
            f"{r['ticket_heard_right']} / {r['ticket_turns']}",
            f"{_ms(r['ticket_latency_p95_ms'])} ms",
            f"{r['read_back_heard_right']} / {r['read_back_heard_wrong']} "
            f"of {r['read_back_turns']}",
            f"{_ms(r['read_back_latency_p95_ms'])} ms",
        ]
    return [
        f"{_ms(r['ticket_latency_p50_ms'])} / {_ms(r['ticket_latency_p95_ms'])} ms",
        f"{_ms(r['ticket_wait_p50_ms'])} / {_ms(r['ticket_wait_p95_ms'])} ms",
        f"{r['ticket_heard_right']} / {r['ticket_turns']}",
    ]


def _table(results: list[Row], first: str) -> None:
    mix = results[0].get("mix", "speech") if results else "speech"
    headers = [
        first,
        "all answered and recorded",
        "menu heard right / wrong",
        "menu reply p95",
        *COLUMNS[mix],
        "audio on time: worst call, calls late",
        "CPU s per call-minute",
        "RSS / PSS growth",
        "RSS / PSS per call beyond the first",
    ]
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for r in results:
        cells = [
            str(r["calls"]),
            "yes" if r["all_answered_and_recorded"] else "NO",
            f"{r['menu_heard_right']} / {r.get('menu_heard_wrong', '-')} of {r['menu_turns']}",
            f"{_ms(r['menu_latency_p95_ms'])} ms",
            *_mix_cells(r),
            _clock(r),
            f"{r['cpu_s_per_call_minute']:.2f}",
            f"{r['rss_mb_growth']:.0f} / {r['pss_mb_growth']:.0f} MB",
            f"{_mb(r['rss_mb_per_extra_call'])} / {_mb(r['pss_mb_per_extra_call'])}",
        ]
        print("| " + " | ".join(cells) + " |")


def _print(results: list[Row], mix: Mix) -> None:
    print(f"\n## The {mix.name} mix\n")
    at_once = [r for r in results if r["arrival"] == "at once"]
    spread = [r for r in results if r["arrival"] == "spread"]
    if at_once:
        print("All at once:\n")
        _table(at_once, "concurrent SIP calls")
    if spread:
        print("\nSpread (2N calls arriving evenly, N in progress at once):\n")
        _table(spread, "calls in progress")
    print("\nPSS growth by process, each at its own peak:\n")
    roles = sorted({k for r in results for k in r["pss_mb_growth_by_process"]})
    print("| calls | arrival | " + " | ".join(roles) + " |\n|---|---|" + "---|" * len(roles))
    for r in results:
        by = r["pss_mb_growth_by_process"]
        cells = [f"{by.get(k, 0.0):.0f} MB" for k in roles]
        print(f"| {r['calls']} | {r['arrival']} | " + " | ".join(cells) + " |")
    print("\nCPU seconds per call-minute by process:\n")
    roles = sorted({k for r in results for k in r.get("cpu_s_per_call_minute_by_process", {})})
    print("| calls | arrival | " + " | ".join(roles) + " |\n|---|---|" + "---|" * len(roles))
    for r in results:
        by = r.get("cpu_s_per_call_minute_by_process", {})
        cells = [f"{by.get(k, 0.0):.2f}" for k in roles]
        print(f"| {r['calls']} | {r['arrival']} | " + " | ".join(cells) + " |")


def main() -> None:
    mixes, at_once, spread, everything = _arguments(sys.argv[1:])
    results: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        # as a line is deployed: every English prompt in the cache at the phone's rate (else
        # the voice makes the ones the warm-up did not need, a re-prompt, during the calls)
        settings = load_settings(home=home)
        build_cache(
            settings, Synthesizer(settings.cache_dir / "prompts"), ["en-US"], sample_rates=(8000,)
        )
        for number, mix in enumerate(mixes):
            audio = work / f"caller-{mix.name}.ulaw"
            audio.write_bytes(ulaw_encode(caller_audio(mix)))
            if number == 0:  # not counted: loads and warms the engines
                run_level(WARM_UP, mix, home, work, audio)
            levels = (mix.levels, mix.spread_levels) if everything else (at_once, spread)
            results += [run_level(n, mix, home, work, audio) for n in levels[0]]
            results += [run_level(n, mix, home, work, audio, spread=True) for n in levels[1]]
    per_extra_call(results)
    for mix in mixes:
        _print([r for r in results if r["mix"] == mix.name], mix)
    print(f"\n`ivr serve` ready to answer in {results[-1]['ready_s']:.1f} s (prompt cache warm)")
    if everything:
        out = REPO / "bench" / "sip.json"
        names = {mix.name for mix in mixes}
        kept = json.loads(out.read_text()) if out.exists() else []
        kept = [r for r in kept if r.get("mix", "speech") not in names]  # the other mix's rows
        out.write_text(json.dumps(kept + results, indent=2))
        print(f"written to {out}")


if __name__ == "__main__":
    main()
