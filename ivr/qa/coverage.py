"""Flow coverage: which states and transitions of the flow tables a QA run exercised.

The tables are the very FlowSpec declarations the call machine runs. A call's recorded
path (``states``) exercises the transition between each pair of consecutive states; a
pair that no table row declares but a wildcard row (``*`` -> transfer, ``*`` -> main menu)
explains is counted as that wildcard's use.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Final

from ivr.flows.base import FlowSpec
from ivr.flows.call import FLOWS, machine_tables

WILDCARD: Final = "*"
FINAL: Final = "end"  # the machine stops here; calls that ended normally reached it unrecorded
ENDED: Final = ("resolved", "transferred")


@dataclass(frozen=True)
class Transition:
    trigger: str
    source: str
    dest: str

    def __str__(self) -> str:
        return f"{self.source} --{self.trigger}--> {self.dest}"


@dataclass
class Coverage:
    states: list[str]
    transitions: list[Transition]
    visited: set[str] = field(default_factory=set)
    exercised: set[Transition] = field(default_factory=set)
    wildcard_uses: dict[str, set[str]] = field(default_factory=dict)  # dest -> sources seen
    undeclared: set[tuple[str, str]] = field(default_factory=set)  # pairs no table row explains

    @property
    def missed_states(self) -> list[str]:
        return [s for s in self.states if s not in self.visited]

    @property
    def missed_transitions(self) -> list[Transition]:
        return [t for t in self.transitions if t not in self.exercised]

    def as_dict(self) -> dict[str, Any]:
        return {
            "states": {"total": len(self.states), "visited": len(self.visited & set(self.states))},
            "transitions": {"total": len(self.transitions), "exercised": len(self.exercised)},
            "missed_states": self.missed_states,
            "missed_transitions": [vars(t) for t in self.missed_transitions],
            "wildcard_uses": {d: sorted(s) for d, s in sorted(self.wildcard_uses.items())},
            "undeclared": [list(p) for p in sorted(self.undeclared)],
        }


def flow_coverage(calls: list[dict[str, Any]], flows: tuple[FlowSpec, ...] = FLOWS) -> Coverage:
    states, rows = machine_tables(flows)
    declared = [Transition(r["trigger"], r["source"], r["dest"]) for r in rows]
    table = [t for t in declared if t.source != WILDCARD]
    wild_dests = {t.dest for t in declared if t.source == WILDCARD}
    for t in table:
        for s in (t.source, t.dest):
            if s not in states:
                states.append(s)
    by_pair: dict[tuple[str, str], list[Transition]] = {}
    for t in table:
        by_pair.setdefault((t.source, t.dest), []).append(t)
    cov = Coverage(states=states, transitions=table)
    for call in calls:
        path = [str(s) for s in call.get("states") or []]
        if path and call.get("outcome") in ENDED and (path[-1], FINAL) in by_pair:
            path.append(FINAL)
        cov.visited.update(path)
        for pair in itertools.pairwise(path):
            if pair in by_pair:
                cov.exercised.update(by_pair[pair])
            elif pair[1] in wild_dests:
                cov.wildcard_uses.setdefault(pair[1], set()).add(pair[0])
            else:
                cov.undeclared.add(pair)
    return cov


def format_coverage(cov: Coverage, flows: tuple[FlowSpec, ...] = FLOWS) -> list[str]:
    """Per flow: states and transitions exercised, and those never exercised."""
    states_hit = len(cov.visited & set(cov.states))
    lines = [
        f"states: {states_hit}/{len(cov.states)} ({_pct(states_hit, len(cov.states))})",
        f"transitions: {len(cov.exercised)}/{len(cov.transitions)} "
        f"({_pct(len(cov.exercised), len(cov.transitions))})",
    ]
    for flow in flows:
        rows = [Transition(*row) for row in flow.transitions]
        hit = sum(t in cov.exercised for t in rows)
        lines.append(f"{flow.name}: {hit}/{len(rows)} transitions")
        missed_states = [s for s in flow.states if s not in cov.visited]
        if missed_states:
            lines.append("  never entered: " + ", ".join(missed_states))
        lines.extend(f"  never taken: {t}" for t in rows if t not in cov.exercised)
    for dest, sources in sorted(cov.wildcard_uses.items()):
        lines.append(f"{WILDCARD} -> {dest}: taken from {', '.join(sorted(sources))}")
    for src, dest in sorted(cov.undeclared):
        lines.append(f"undeclared step: {src} -> {dest}")
    return lines


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.0f} %" if total else "n/a"
