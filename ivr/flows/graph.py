"""State diagrams drawn from the very flow definitions the IVR runs (transitions' diagrams).

Each flow is drawn with its own states, plus the states it hands over to (the main menu,
"anything else", a transfer) drawn as exits, so a reader sees where every path leads.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from ivr.errors import IvrError
from ivr.flows.base import FlowSpec
from ivr.flows.call import FLOWS, machine_tables

FORMATS: Final = ("mermaid", "svg", "png")
WHOLE_CALL: Final = "call"


class GraphError(IvrError):
    """A diagram that cannot be drawn (unknown flow, missing Graphviz)."""


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


def draw(name: str, fmt: str = "mermaid") -> bytes:
    """The diagram of ``name`` as mermaid text, or an SVG or PNG image (needs Graphviz)."""
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    states, transitions, initial = flow_tables(name)

    class Model:
        pass

    model = Model()
    engine: Literal["mermaid", "graphviz"] = "mermaid" if fmt == "mermaid" else "graphviz"
    try:
        from transitions.extensions import GraphMachine

        GraphMachine(
            model=model,
            states=states,
            transitions=transitions,
            initial=initial,
            auto_transitions=False,
            graph_engine=engine,
            title=f"ivr flow: {name}",
            show_conditions=False,
        )
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


def _spec(name: str) -> FlowSpec:
    for spec in FLOWS:
        if spec.name == name:
            return spec
    raise GraphError(f"unknown flow {name!r}; expected one of {', '.join(flow_names())}")
