"""A QA run as data: the JSON document ``ivr qa run --json`` prints, and its summary numbers.

The document is the contract between a run and everything read from it later (the HTML
report, ``ivr qa diff``, ``ivr qa coverage``, a CI baseline), so everything here works on
the plain dictionaries of that document, including runs written by older versions.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ivr.errors import ConfigError

NO_CONDITION: Final = ""  # calls run without a caller condition


@dataclass
class Rate:
    passed: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass
class Summary:
    passed: int
    failed: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    by_condition: dict[str, Rate] = field(default_factory=dict)  # only when calls carry one
    p95_by_ask: dict[str, float] = field(default_factory=dict)
    flaky: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "by_condition": {
                c: {"passed": r.passed, "total": r.total, "rate": round(r.rate, 3)}
                for c, r in self.by_condition.items()
            },
            "p95_by_ask": self.p95_by_ask,
        }


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest-rank method; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 1)


def call_key(call: dict[str, Any]) -> str:
    """What identifies a call across runs: its path, and its caller condition when it has one."""
    condition = call.get("condition")
    return f"{call['path']} [{condition}]" if condition else str(call["path"])


def latencies(calls: Iterable[dict[str, Any]]) -> dict[str, list[float]]:
    """Turn latencies (ms) per ask."""
    per_ask: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        for turn in call.get("turns") or []:
            if turn.get("latency_ms") is not None:
                per_ask[str(turn["ask"])].append(float(turn["latency_ms"]))
    return dict(per_ask)


def summarize(calls: list[dict[str, Any]]) -> Summary:
    per_ask = latencies(calls)
    every = [v for values in per_ask.values() for v in values]
    by_condition: dict[str, Rate] = {}
    if any(c.get("condition") for c in calls):
        for call in calls:
            rate = by_condition.setdefault(str(call.get("condition") or NO_CONDITION), Rate())
            rate.total += 1
            rate.passed += bool(call.get("passed"))
    passed = sum(bool(c.get("passed")) for c in calls)
    return Summary(
        passed=passed,
        failed=len(calls) - passed,
        latency_p50_ms=percentile(every, 0.5),
        latency_p95_ms=percentile(every, 0.95),
        by_condition=dict(sorted(by_condition.items())),
        p95_by_ask={ask: p for ask, v in sorted(per_ask.items()) if (p := percentile(v, 0.95))},
        flaky=sorted({call_key(c) for c in calls if c.get("flaky")}),
    )


def run_document(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole ``--json`` document: counts, summary, calls."""
    summary = summarize(calls)
    doc: dict[str, Any] = {
        "passed": summary.passed,
        "failed": summary.failed,
        "summary": summary.as_dict(),
        "calls": calls,
    }
    if summary.flaky:
        doc["flaky"] = summary.flaky
    return doc


def load_run(path: Path) -> dict[str, Any]:
    """A run document written by ``ivr qa run --json``, checked enough to be read safely."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON document: {exc}") from exc
    calls = doc.get("calls") if isinstance(doc, dict) else None
    if not isinstance(calls, list) or not all(isinstance(c, dict) and "path" in c for c in calls):
        raise ConfigError(f"{path}: expected an `ivr qa run --json` document with calls[].path")
    return doc
