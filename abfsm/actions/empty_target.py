"""empty: zero an ASG that must be empty before it is filled, and wait until it is.

Used by --clean-up (the ASG serving fewer healthy instances) and --single-asg (the ASG
itself, when populated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions import processes
from abfsm.actions.asg_empty import planned_zero, wait_empty, zero_asg
from abfsm.actions.base import AwsCall, Run, action, describe_asg, update_asg
from abfsm.context import Settings


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    calls = [update_asg("asg:target"), describe_asg("asg:target")]
    if settings.resume_processes:
        calls.append(processes.calls()[0])  # ResumeProcesses (Terminate)
    return calls


def _planned(run: Run) -> tuple[str, list[str]]:
    asg = run.plan.empty_first
    resume = processes.planned_calls(run.plan, asg, only=("Terminate",)) if asg else []
    return "emptied", resume + planned_zero(asg)


@action({"emptied"}, requires=("empty_first",), calls=_calls, planner=_planned,
        doc="zero the ASG that must be empty before it is filled (--clean-up, --single-asg) "
            "and wait until it is")
def empty_target(run: Run) -> str:
    asg: str = run.plan.empty_first  # type: ignore[assignment]
    processes.resume(run, asg, only=("Terminate",))  # --resume-processes
    zero_asg(run, asg)
    wait_empty(run, asg)
    run.log.info("asg.emptied", asg=asg)
    return "emptied"
