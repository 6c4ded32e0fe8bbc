"""scale: set the target ASG's desired capacity to the current step's absolute value.

Absolute, not incremental: re-running the state (resume) never adds capacity twice, and no
desired capacity above the target count is ever sent. MaxSize is raised in the same call
when the count needs it (decided and logged in inspect).

MinSize: a target ASG with desired capacity 0 has MinSize 0 (AWS keeps desired >= min). One
that had MinSize above 0 at inspect was populated and is emptied first (--single-asg,
--clean-up), which sets its MinSize to 0. Each step then sends MinSize = min(that MinSize,
the step's desired capacity): never above the desired capacity (AWS would refuse it), and
restored to the value inspect saw once the steps reach it (to the target count if that is
smaller). Inspect logs it (`inspect.min_size`).

Before the first step's call, actions/ship.py sets what the target launches
(--launch-template-version, --image-id) and resumes its Launch process (--resume-processes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions import ship
from abfsm.actions.base import AwsCall, Run, action, update_asg
from abfsm.aws.autoscaling import describe_update, update_params
from abfsm.context import Plan, Settings


def step_params(plan: Plan, index: int) -> dict[str, Any]:
    """The UpdateAutoScalingGroup parameters of step `index`: for the real call and the plan."""
    want = plan.steps[index]
    max_size = plan.raise_max_to if plan.raise_max_to and plan.raise_max_to > plan.target_max else None
    min_size = min(plan.target_min, want) if plan.target_min > 0 else None
    return update_params(plan.target or "", desired=want, min_size=min_size, max_size=max_size)


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    return [*ship.calls(settings), update_asg("asg:target")]


def _planned(run: Run) -> tuple[str, list[str]]:
    first = ship.plan_calls(run.plan) if run.plan.step_index == 0 else []
    return "scaled", first + [describe_update(step_params(run.plan, run.plan.step_index))]


@action({"scaled"}, requires=("target", "steps"), calls=_calls,
        planner=_planned,
        doc="set the target ASG's desired capacity to the current step (MaxSize raised with it "
            "when the count needs it)")
def scale_step(run: Run) -> str:
    plan = run.plan
    ship.prepare_target(run)
    params = step_params(plan, plan.step_index)
    run.aws.autoscaling.update_capacity(plan.target, desired=params["DesiredCapacity"],  # type: ignore[arg-type]
                                        min_size=params.get("MinSize"),
                                        max_size=params.get("MaxSize"))
    run.log.info("scale.step", asg=plan.target, desired=params["DesiredCapacity"],
                 step=plan.step_index + 1, steps=len(plan.steps))
    return "scaled"
