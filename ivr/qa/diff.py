"""Regressions between two QA runs (``ivr qa diff OLD.json NEW.json``, ``run --baseline``).

Calls are matched by path (and caller condition). A regression is a call that passed and
now fails; changed turns (heard text, value, or a different ask) and latency p95 per ask
are reported beside it so a reader sees why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ivr.qa.results import call_key, latencies, percentile

LATENCY_CHANGE_MIN_MS: Final = 10.0  # smaller p95 moves are noise
LATENCY_CHANGE_MIN_RATIO: Final = 0.2


@dataclass(frozen=True)
class TurnChange:
    call: str
    turn: int  # 1-based
    ask: str
    field: str  # "heard", "value" or "ask"
    old: Any
    new: Any


@dataclass(frozen=True)
class LatencyChange:
    ask: str
    old_p95_ms: float
    new_p95_ms: float


@dataclass
class RunDiff:
    regressed: list[str] = field(default_factory=list)  # passed, now fails
    fixed: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    outcome_changes: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    turns: list[TurnChange] = field(default_factory=list)
    latency: list[LatencyChange] = field(default_factory=list)

    @property
    def has_regression(self) -> bool:
        return bool(self.regressed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "regressed": self.regressed,
            "fixed": self.fixed,
            "still_failing": self.still_failing,
            "added": self.added,
            "removed": self.removed,
            "outcome_changes": [
                {"call": c, "old": o, "new": n} for c, o, n in self.outcome_changes
            ],
            "turns": [vars(t) for t in self.turns],
            "latency": [vars(x) for x in self.latency],
        }


def diff_runs(old: dict[str, Any], new: dict[str, Any]) -> RunDiff:
    before = {call_key(c): c for c in old["calls"]}
    after = {call_key(c): c for c in new["calls"]}
    diff = RunDiff(
        added=[k for k in after if k not in before],
        removed=[k for k in before if k not in after],
    )
    for key, now in after.items():
        was = before.get(key)
        if was is None:
            continue
        if was.get("passed") and not now.get("passed"):
            diff.regressed.append(key)
        elif not was.get("passed") and now.get("passed"):
            diff.fixed.append(key)
        elif not now.get("passed"):
            diff.still_failing.append(key)
        if was.get("outcome") != now.get("outcome"):
            diff.outcome_changes.append((key, was.get("outcome"), now.get("outcome")))
        diff.turns.extend(_turn_changes(key, was.get("turns") or [], now.get("turns") or []))
    diff.latency = _latency_changes(old["calls"], new["calls"])
    return diff


def _turn_changes(
    key: str, old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[TurnChange]:
    changes = []
    for n, (a, b) in enumerate(zip(old, new, strict=False), 1):
        if a.get("ask") != b.get("ask"):
            changes.append(TurnChange(key, n, str(b.get("ask")), "ask", a.get("ask"), b.get("ask")))
            break  # the paths part here; later turns are not comparable
        for name in ("heard", "value"):
            if a.get(name) != b.get(name):
                changes.append(TurnChange(key, n, str(b["ask"]), name, a.get(name), b.get(name)))
    return changes


def _latency_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[LatencyChange]:
    before, after = latencies(old), latencies(new)
    changes = []
    for ask in sorted(set(before) & set(after)):
        p_old, p_new = percentile(before[ask], 0.95), percentile(after[ask], 0.95)
        if p_old is None or p_new is None:
            continue
        delta = abs(p_new - p_old)
        if delta >= LATENCY_CHANGE_MIN_MS and delta >= LATENCY_CHANGE_MIN_RATIO * p_old:
            changes.append(LatencyChange(ask, p_old, p_new))
    return changes


def format_diff(diff: RunDiff) -> list[str]:
    """The diff as lines for a terminal or a CI log."""
    lines: list[str] = []
    for title, keys in (
        ("REGRESSED (passed, now fails)", diff.regressed),
        ("fixed", diff.fixed),
        ("still failing", diff.still_failing),
        ("new calls", diff.added),
        ("calls gone", diff.removed),
    ):
        if keys:
            lines.append(f"{title}:")
            lines.extend(f"  {k}" for k in keys)
    for key, was, now in diff.outcome_changes:
        lines.append(f"outcome changed: {key}: {was} -> {now}")
    for t in diff.turns:
        lines.append(
            f"turn changed: {t.call}: turn #{t.turn} ({t.ask}) {t.field}: {t.old!r} -> {t.new!r}"
        )
    for x in diff.latency:
        lines.append(f"latency p95 {x.ask}: {x.old_p95_ms:.0f} ms -> {x.new_p95_ms:.0f} ms")
    if not lines:
        lines.append("no differences")
    lines.append(
        f"{len(diff.regressed)} regressed, {len(diff.fixed)} fixed, {len(diff.turns)} turn changes"
    )
    return lines
