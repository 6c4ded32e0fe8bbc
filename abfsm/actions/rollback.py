"""rollback (--rollback-on-failure): the new ASG back to 0, MinSize too; the old one untouched.

What this run changed on the new ASG is undone too: its launch template version back to the
one it ran before (actions/version.py), and the processes --resume-processes resumed
suspended again (Terminate once it is empty; actions/processes.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions import processes, version
from abfsm.actions.asg_empty import planned_zero, zero_asg
from abfsm.actions.base import AwsCall, Run, action, describe_asg, update_asg
from abfsm.context import Settings


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    calls = [update_asg("asg:target")]
    if version.wanted(settings) or settings.resume_processes:
        calls.append(describe_asg("asg:target"))
    if settings.resume_processes:
        calls += processes.calls()
    return calls


def _planned(run: Run) -> tuple[str, list[str]]:
    return "rolled_back", (planned_zero(run.plan.target) + version.planned_restore(run.plan)
                           + processes.planned_suspends(run.plan))


@action({"rolled_back"}, requires=("target",), calls=_calls, planner=_planned,
        doc="set the new ASG's MinSize and DesiredCapacity back to 0 and its launch template "
            "version back; the old one is untouched")
def rollback(run: Run) -> str:
    asg: str = run.plan.target  # type: ignore[assignment]
    zero_asg(run, asg)
    version.restore(run)
    processes.resuspend_all(run, emptying=(asg,))
    run.log.info("rollback.done", asg=asg, kept=run.plan.active)
    return "rolled_back"
