"""drain: MinSize and DesiredCapacity of the old ASG to 0 (works when MinSize > 0).

With --wait-for-scale-down, waits until the old ASG has no instances left and its targets
have left every target group (draining -> gone), within --health-check-timeout.
"""

from __future__ import annotations

from abfsm.actions.asg_empty import wait_empty, zero_asg
from abfsm.actions.base import Run, action


@action({"drained"}, requires=("mode",))
def drain(run: Run) -> str:
    plan = run.plan
    old = plan.active if plan.active and plan.active != plan.target else None
    if old is None:
        run.log.info("drain.nothing", reason="no old ASG to drain")
        return "drained"
    old_ids: list[str] = []
    if run.settings.wait_for_scale_down and plan.target_groups:
        group = run.aws.autoscaling.describe([old]).get(old)
        old_ids = [i.id for i in group.instances] if group else []
    zero_asg(run, old)
    run.log.info("drain.started", asg=old, deregistration_delays=plan.deregistration_delays)
    if run.settings.wait_for_scale_down:
        wait_empty(run, old, old_ids)
        run.log.info("drain.finished", asg=old)
    return "drained"
