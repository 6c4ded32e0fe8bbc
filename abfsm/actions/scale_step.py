"""scale: set the target ASG's desired capacity to the current step's absolute value.

Absolute, not incremental: re-running the state (resume) never adds capacity twice, and no
desired capacity above the target count is ever sent. MaxSize is raised in the same call
when the count needs it (decided and logged in inspect). Before the first step's call,
actions/ship.py sets what the target launches (--launch-template-version, --image-id) and
resumes its Launch process (--resume-processes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions import ship
from abfsm.actions.base import AwsCall, Run, action, update_asg
from abfsm.context import Settings


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    return [*ship.calls(settings), update_asg("asg:target")]


@action({"scaled"}, requires=("target", "steps"), calls=_calls,
        doc="set the target ASG's desired capacity to the current step (MaxSize raised with it "
            "when the count needs it)")
def scale_step(run: Run) -> str:
    plan = run.plan
    ship.prepare_target(run)
    want = plan.step_desired
    max_size = plan.raise_max_to if plan.raise_max_to and plan.raise_max_to > plan.target_max else None
    min_size = want if plan.target_min > want else None
    run.aws.autoscaling.update_capacity(plan.target, desired=want,  # type: ignore[arg-type]
                                        min_size=min_size, max_size=max_size)
    run.log.info("scale.step", asg=plan.target, desired=want, step=plan.step_index + 1,
                 steps=len(plan.steps))
    return "scaled"
