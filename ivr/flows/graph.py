"""State diagrams drawn from the very flow definitions the IVR runs (transitions' diagrams).

Each flow is drawn with its own states, plus the states it hands over to (the main menu,
"anything else", a transfer) drawn as exits, so a reader sees where every path leads.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ivr.errors import IvrError
from ivr.flows.base import FlowSpec
from ivr.flows.call import FLOWS, machine_tables

FORMATS: Final = ("mermaid", "svg", "png")
WHOLE_CALL: Final = "call"


class GraphError(IvrError):
    """A diagram that cannot be drawn (unknown flow, missing Graphviz)."""


# Coverage colours: what a QA run exercised, and what it never did.
COVERED_STYLE: Final = {
    "node": {"fillcolor": "palegreen", "color": "darkgreen"},
    "edge": {"color": "darkgreen", "penwidth": "2"},
}
MISSED_STYLE: Final = {
    "node": {"fillcolor": "mistyrose", "color": "red3"},
    "edge": {"color": "red3", "style": "dashed"},
}


@dataclass(frozen=True)
class Highlight:
    """States and (source, dest) steps to colour as covered; the rest of the flow as missed."""

    states: Collection[str] = field(default_factory=frozenset)
    steps: Collection[tuple[str, str]] = field(default_factory=frozenset)


def flow_names() -> list[str]:
    return [WHOLE_CALL, *(f.name for f in FLOWS)]


def flow_tables(name: str) -> tuple[list[str], list[dict[str, Any]], str]:
    """States, transitions and the initial state of one flow (or of the whole call)."""
    if name == WHOLE_CALL:
        states, transitions = machine_tables()
        return states, transitions, "welcome"
    spec = _spec(name)
    states = list(spec.states)
    for _trigger, source, dest in spec.transitions:
        for state in (source, dest):
            if state not in states:
                states.append(state)  # an exit into another flow
    transitions = [{"trigger": t, "source": s, "dest": d} for t, s, d in spec.transitions]
    return states, transitions, spec.states[0]


def draw(name: str, fmt: str = "mermaid", *, highlight: Highlight | None = None) -> bytes:
    """The diagram of ``name`` as mermaid text, or an SVG or PNG image (needs Graphviz).

    With ``highlight`` (a QA run's coverage) covered states and transitions are green and
    the ones never exercised red.
    """
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    states, transitions, initial = flow_tables(name)

    class Model:
        pass

    model = Model()
    engine: Literal["mermaid", "graphviz"] = "mermaid" if fmt == "mermaid" else "graphviz"
    try:
        from transitions.extensions import GraphMachine

        machine = GraphMachine(
            model=model,
            states=states,
            transitions=transitions,
            initial=initial,
            auto_transitions=False,
            graph_engine=engine,
            title=f"ivr flow: {name}",
            show_conditions=False,
        )
        if highlight is not None:
            _colour(machine, machine.model_graphs[id(model)], transitions, highlight)
        graph = model.get_graph()  # type: ignore[attr-defined]
        if fmt == "mermaid":
            return str(graph.draw(None)).encode()
        return bytes(graph.draw(None, format=fmt, prog="dot"))
    except ImportError as exc:
        raise GraphError(
            f"drawing {fmt} needs the graphviz Python package: pip install graphviz ({exc})"
        ) from exc
    except Exception as exc:
        if type(exc).__name__ == "ExecutableNotFound":
            raise GraphError(
                "drawing svg or png needs the Graphviz `dot` program: apt-get install graphviz"
            ) from exc
        raise


def _colour(
    machine: Any, graph: Any, transitions: list[dict[str, Any]], highlight: Highlight
) -> None:
    styles = copy.deepcopy(machine.style_attributes)
    for kind in ("node", "edge"):
        styles[kind]["covered"] = COVERED_STYLE[kind]
        styles[kind]["missed"] = MISSED_STYLE[kind]
    machine.style_attributes = styles
    for state in machine.states:
        graph.set_node_style(state, "covered" if state in highlight.states else "missed")
    for t in transitions:
        if t["source"] == "*":
            continue
        covered = (t["source"], t["dest"]) in highlight.steps
        graph.custom_styles["edge"][t["source"]][t["dest"]] = "covered" if covered else "missed"


def _spec(name: str) -> FlowSpec:
    for spec in FLOWS:
        if spec.name == name:
            return spec
    raise GraphError(f"unknown flow {name!r}; expected one of {', '.join(flow_names())}")
