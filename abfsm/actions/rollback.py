"""rollback (--rollback-on-failure): the new ASG back to 0, MinSize too; the old one untouched."""

from __future__ import annotations

from abfsm.actions.asg_empty import planned_zero, zero_asg
from abfsm.actions.base import Run, action, update_asg


@action({"rolled_back"}, requires=("target",), calls=[update_asg("asg:target")],
        planner=lambda run: ("rolled_back", planned_zero(run.plan.target)),
        doc="set the new ASG's MinSize and DesiredCapacity back to 0; the old one is untouched")
def rollback(run: Run) -> str:
    asg: str = run.plan.target  # type: ignore[assignment]
    zero_asg(run, asg)
    run.log.info("rollback.done", asg=asg, kept=run.plan.active)
    return "rolled_back"
