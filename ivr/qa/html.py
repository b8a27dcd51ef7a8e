"""The QA report as static HTML (``ivr qa run --html DIR``): a summary page and one page per call.

Pages use relative links only, so the folder opens from disk and from any web server. Each
call's stereo recording (caller left, IVR right) is copied beside the pages for its audio
player. Markup lives in ``templates/``; this module only shapes the data.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape

from ivr.qa.results import summarize

TEMPLATES: Final = resources.files("ivr.qa") / "templates"
STYLESHEET: Final = "report.css"


@dataclass(frozen=True)
class CallPage:
    file: str
    audio: str | None
    call: dict[str, Any]


def write_report(folder: Path, doc: dict[str, Any], *, title: str = "ivr QA report") -> Path:
    """Write ``index.html`` and one page per call into ``folder``; returns the index page."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    env = _environment()
    pages = [_page(folder, n, call) for n, call in enumerate(doc["calls"], 1)]
    summary = summarize(doc["calls"])
    (folder / STYLESHEET).write_text(_template_source(STYLESHEET), encoding="utf-8")
    call_template = env.get_template("call.html")
    for page in pages:
        (folder / page.file).write_text(
            call_template.render(title=title, page=page, call=page.call, turns=_steps(page.call)),
            encoding="utf-8",
        )
    index = folder / "index.html"
    index.write_text(
        env.get_template("index.html").render(title=title, summary=summary, pages=pages),
        encoding="utf-8",
    )
    return index


def _page(folder: Path, n: int, call: dict[str, Any]) -> CallPage:
    slug = re.sub(r"[^a-z0-9]+", "-", Path(str(call["path"])).parent.name.lower()).strip("-")
    if call.get("condition"):
        slug += f"-{call['condition']}"
    base = f"{n:03d}-{slug or 'call'}"
    audio = None
    recording = call.get("recording")
    if recording and Path(recording).is_file():
        source = Path(recording).resolve()
        if source.is_relative_to(folder.resolve()):  # recorded straight into the report
            audio = source.relative_to(folder.resolve()).as_posix()
        else:
            audio = f"audio/{base}.wav"
            shutil.copyfile(source, folder / audio)
    return CallPage(file=f"{base}.html", audio=audio, call=call)


def _steps(call: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation in order: IVR lines, then each turn with its recognition details."""
    turns = call.get("turns") or []
    steps: list[dict[str, Any]] = []
    for event in call.get("transcript") or []:
        if "turn" in event:
            index = int(event["turn"])
            if index < len(turns):
                steps.append({"turn": index + 1, **turns[index]})
        elif event.get("speaker") == "ivr":
            steps.append({"ivr": event["text"]})
    if not steps:  # a run document without a transcript: turns alone
        steps = [{"turn": n, **t} for n, t in enumerate(turns, 1)]
    return steps


def _template_source(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _environment() -> Environment:
    env = Environment(
        loader=FunctionLoader(_template_source),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda x: f"{100 * x:.0f} %"
    env.filters["ms"] = lambda x: "-" if x is None else f"{x:.0f} ms"
    return env
