"""Walkthroughs: a knowledge article's steps, one at a time, each confirmed."""

from __future__ import annotations

import enum
from collections.abc import Callable

from ivr.dialog.engine import Dialog, TransferRequested
from ivr.dialog.prompts import SpokenText
from ivr.dialog.turns import AskKind
from ivr.services.knowledge import Article


class StepAnswer(enum.StrEnum):
    DONE = "done"
    REPEAT = "repeat_step"
    BACK = "back"
    STUCK = "stuck"
    TEXT_ME = "text_me"


def run_walkthrough(
    dialog: Dialog, article: Article, *, text_steps: Callable[[], None] | None = None
) -> int:
    """Guide the caller through every step; returns the number of steps completed.

    ``text_steps`` sends the steps by text message (and says so); when given, the caller is
    told before step 1 that "text me" (key 9) sends them. At any step, "text me" sends them
    and the same ask continues, like a global command.
    Raises TransferRequested("stuck_on_step", step="<article> step N") when the caller is stuck.
    """
    total = len(article.steps)
    index = 0
    extra_slow = 0
    if text_steps is not None and total:
        dialog.say("walkthrough_text_offer")
    while index < total:
        dialog.state.slower += extra_slow
        try:
            dialog.say(
                "walkthrough_step",
                number=index + 1,
                total=total,
                text=SpokenText(article.steps[index]),
            )
        finally:
            dialog.state.slower -= extra_slow
        answer = dialog.ask("step_done", grammar="step_done", kind=AskKind.MENU)
        while answer.value == StepAnswer.TEXT_ME:
            if text_steps is not None:
                text_steps()
            else:
                dialog.say("steps_not_sent")
            answer = dialog.ask("step_done", grammar="step_done", kind=AskKind.MENU)
        match StepAnswer(answer.value):
            case StepAnswer.DONE:
                index += 1
                extra_slow = 0
            case StepAnswer.REPEAT:
                extra_slow = 1
            case StepAnswer.BACK:
                if index == 0:
                    dialog.say("walkthrough_first_step")
                index = max(0, index - 1)
                extra_slow = 0
            case StepAnswer.STUCK:
                raise TransferRequested("stuck_on_step", step=f"{article.id} step {index + 1}")
            case StepAnswer.TEXT_ME:  # pragma: no cover - answered above
                pass
    return total
