"""JUnit XML for CI pages: one test case per call, its turns and latencies in ``system-out``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def turn_lines(call: dict[str, Any]) -> list[str]:
    """One readable line per turn: ask, mode, what was heard, value, confidence, latency."""
    lines = []
    for n, turn in enumerate(call.get("turns") or [], 1):
        conf = turn.get("confidence")
        latency = turn.get("latency_ms")
        lines.append(
            f"turn {n}: {turn.get('ask')} [{turn.get('mode')}] heard {turn.get('heard')!r}"
            f" -> {turn.get('value')}"
            + ("" if conf is None else f" confidence {conf:.2f}")
            + ("" if latency is None else f" latency {latency:.0f} ms")
        )
    return lines


def system_out(call: dict[str, Any]) -> str:
    head = [f"outcome: {call.get('outcome')} {call.get('transfer_reason') or ''}".rstrip()]
    if call.get("condition"):
        head.append(f"condition: {call['condition']}")
    if call.get("states"):
        head.append("path: " + " -> ".join(call["states"]))
    if call.get("outcomes"):
        head.append("repeated outcomes: " + ", ".join(call["outcomes"]))
    return "\n".join(head + turn_lines(call)) + "\n"


def write_junit(path: Path, calls: list[dict[str, Any]]) -> None:
    suite = ET.Element(
        "testsuite",
        name="ivr-qa",
        tests=str(len(calls)),
        failures=str(sum(not c.get("passed") for c in calls)),
        time=f"{sum(float(c.get('seconds') or 0) for c in calls):.2f}",
    )
    for call in calls:
        name = call["name"] + (f" [{call['condition']}]" if call.get("condition") else "")
        case = ET.SubElement(
            suite,
            "testcase",
            name=name,
            classname=str(call["path"]),
            time=f"{float(call.get('seconds') or 0):.2f}",
        )
        if not call.get("passed"):
            failure = ET.SubElement(case, "failure", message=call.get("error") or "failed")
            failure.text = "\n".join(call.get("failures") or [call.get("error") or "failed"])
        ET.SubElement(case, "system-out").text = system_out(call)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
