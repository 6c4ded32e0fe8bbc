"""scale: set the target ASG's desired capacity to the current step's absolute value.

Absolute, not incremental: re-running the state (resume) never adds capacity twice, and no
desired capacity above the target count is ever sent. MaxSize is raised in the same call
when the count needs it (decided and logged in inspect).
"""

from __future__ import annotations

from abfsm.actions.base import Run, action, update_asg


@action({"scaled"}, requires=("target", "steps"), calls=[update_asg("asg:target")],
        doc="set the target ASG's desired capacity to the current step (MaxSize raised with it "
            "when the count needs it)")
def scale_step(run: Run) -> str:
    plan = run.plan
    want = plan.step_desired
    max_size = plan.raise_max_to if plan.raise_max_to and plan.raise_max_to > plan.target_max else None
    min_size = want if plan.target_min > want else None
    run.aws.autoscaling.update_capacity(plan.target, desired=want,  # type: ignore[arg-type]
                                        min_size=min_size, max_size=max_size)
    run.log.info("scale.step", asg=plan.target, desired=want, step=plan.step_index + 1,
                 steps=len(plan.steps))
    return "scaled"
