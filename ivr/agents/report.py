"""The supervisor's numbers: the live board, and one day's calls (the desk and `ivr report`)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from ivr.agents.directory import AgentState
from ivr.services.store import Store

LIVE_WINDOW_S: Final = 6 * 3600  # a call with no end this old died with its process


@dataclass
class DayReport:
    day: str
    calls: int = 0
    resolved: int = 0
    containment: float = 0.0  # share of the day's calls resolved without an agent
    transferred: int = 0
    transfers_by_reason: dict[str, int] = field(default_factory=dict)
    abandoned: int = 0
    failed: int = 0
    avg_seconds_by_flow: dict[str, float] = field(default_factory=dict)
    funnel: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Board:
    in_ivr: list[dict[str, Any]]
    queue_length: int
    longest_wait_s: float
    agents_by_state: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_bounds(day: str) -> tuple[float, float]:
    """Start and end (epoch seconds) of a local calendar day ``YYYY-MM-DD``."""
    try:
        start = dt.datetime.strptime(day, "%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(f"expected a day as YYYY-MM-DD, got {day!r}") from exc
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()


def today() -> str:
    return dt.date.today().isoformat()


def day_report(store: Store, day: str | None = None) -> DayReport:
    day = day or today()
    start, end = day_bounds(day)
    rows = store.query(
        "SELECT * FROM calls WHERE started_at >= ? AND started_at < ? ORDER BY started_at",
        (start, end),
    )
    report = DayReport(day=day, calls=len(rows))
    outcomes = Counter(r["outcome"] for r in rows)
    report.resolved = outcomes["resolved"]
    report.transferred = outcomes["transferred"]
    report.abandoned = outcomes["abandoned"]
    report.failed = outcomes["failed"]
    report.containment = round(report.resolved / len(rows), 3) if rows else 0.0
    report.transfers_by_reason = dict(
        Counter(r["transfer_reason"] or "unknown" for r in rows if r["outcome"] == "transferred")
    )
    durations: dict[str, list[float]] = {}
    reached: Counter[str] = Counter()
    left: Counter[str] = Counter()
    for r in rows:
        if r["ended_at"] is not None:
            flow = r["intent"] or "main_menu"
            durations.setdefault(flow, []).append(r["ended_at"] - r["started_at"])
        states = json.loads(r["states"])
        for state in dict.fromkeys(states):  # each state once per call
            reached[state] += 1
        if states and r["outcome"] == "abandoned":
            left[states[-1]] += 1
    report.avg_seconds_by_flow = {
        k: round(sum(v) / len(v), 1) for k, v in sorted(durations.items())
    }
    report.funnel = [
        {"state": state, "reached": n, "left_here": left[state]}
        for state, n in reached.most_common()
    ]
    return report


def live_board(store: Store) -> Board:
    now = time.time()
    calls = store.query(
        "SELECT id, started_at, locale, states FROM calls WHERE ended_at IS NULL"
        " AND started_at > ? ORDER BY started_at",
        (now - LIVE_WINDOW_S,),
    )
    in_ivr = [
        {
            "call_id": c["id"],
            "state": (json.loads(c["states"]) or ["-"])[-1],
            "locale": c["locale"],
            "seconds": round(now - c["started_at"]),
        }
        for c in calls
    ]
    waiting = store.query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM agent_queue WHERE status = 'waiting'"
    )[0]
    by_state: dict[str, list[str]] = {str(s): [] for s in AgentState}
    for a in store.query("SELECT name, state FROM agents WHERE disabled = 0 ORDER BY name"):
        by_state[a["state"]].append(a["name"])
    return Board(
        in_ivr=in_ivr,
        queue_length=int(waiting["n"]),
        longest_wait_s=round(now - waiting["oldest"], 1) if waiting["oldest"] else 0.0,
        agents_by_state=by_state,
    )


CSV_FIELDS: Final = (
    "id",
    "started_at",
    "ended_at",
    "channel",
    "locale",
    "caller_masked",
    "outcome",
    "transfer_reason",
    "intent",
    "ticket_team",
    "states",
)


def calls_csv(store: Store, day: str | None = None) -> str:
    """The day's calls as CSV (callers masked, as in the call records)."""
    start, end = day_bounds(day or today())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for r in store.query(
        f"SELECT {', '.join(CSV_FIELDS)} FROM calls WHERE started_at >= ? AND started_at < ?"
        " ORDER BY started_at",
        (start, end),
    ):
        writer.writerow([_cell(r[f]) for f in CSV_FIELDS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """Spreadsheet formulas in a cell are neutralised (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
