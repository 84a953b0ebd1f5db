"""Running a plan: the operation of its kind, each FFmpeg command handed to the caller's runner."""

from collections.abc import Callable

from renders.plans import operations
from renders.plans.composing import compose
from renders.plans.operations import Result

OPERATIONS = {"trim": operations.trim, "trim-preview": operations.trim_preview, "join": operations.join,
              "template": operations.template, "compose": compose}


def perform(plan, workspace, run: Callable) -> Result:
    """Run the plan's operation, handing each FFmpeg command to `run(args, measures=...)` (which raises on
    failure)."""
    steps = OPERATIONS[plan.kind](plan, workspace)
    answer = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as done:
            return done.value
        answer = run(step.args, measures=step.measures)
