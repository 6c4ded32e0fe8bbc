"""drain: MinSize and DesiredCapacity of the old ASG to 0 (works when MinSize > 0).

From the moment the old ASG is set to 0 its instances are draining: nothing counts them as
serving (wait-elb only ever counted the new ASG's instances). With --wait-for-scale-down,
waits until the old ASG has no instances left and they are deregistered from every load
balancer of the plan (target groups: draining -> gone), within --health-check-timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions import processes
from abfsm.actions.asg_empty import planned_zero, wait_empty, zero_asg
from abfsm.actions.base import AwsCall, Run, action, describe_asg, update_asg
from abfsm.actions.health import lb_health_calls, short_lb
from abfsm.context import Settings


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    calls = [update_asg("asg:active")]
    if settings.wait_for_scale_down:
        calls += [describe_asg("asg:active"), *lb_health_calls(settings)]
    if settings.resume_processes:
        calls += processes.calls()
    return calls


def _old(run: Run) -> str | None:
    plan = run.plan
    return plan.active if plan.active and plan.active != plan.target else None


def _planned(run: Run) -> tuple[str, list[str]]:
    old = _old(run)
    resume = processes.planned_calls(run.plan, old) if old else []
    return "drained", resume + planned_zero(old) + processes.planned_suspends(run.plan)


@action({"drained"}, requires=("mode",), calls=_calls, planner=_planned,
        doc="set the old ASG's MinSize and DesiredCapacity to 0 (with --wait-for-scale-down, "
            "wait until it is empty and deregistered)")
def drain(run: Run) -> str:
    plan = run.plan
    old = _old(run)
    if old is None:
        run.log.info("drain.nothing", reason="no old ASG to drain")
        processes.resuspend_all(run)
        return "drained"
    processes.resume(run, old)  # --resume-processes: its Terminate
    wait = run.settings.wait_for_scale_down
    old_ids: list[str] = []
    if wait:  # before zeroing: once terminated, the group no longer names them
        group = run.aws.autoscaling.describe([old]).get(old)
        old_ids = [i.id for i in group.instances] if group else []
    zero_asg(run, old)
    lbs = plan.load_balancers + plan.target_groups
    run.log.info("drain.started", asg=old, status="draining",
                 instances=len(old_ids) if wait else plan.active_count, instance_ids=old_ids,
                 load_balancers=[short_lb(lb) for lb in lbs],
                 deregistration_delays=plan.deregistration_delays, wait=wait)
    if wait:
        progress = wait_empty(run, old, old_ids, load_balancers=plan.load_balancers,
                              target_groups=plan.target_groups)
        run.log.info("drain.finished", asg=old, instances=progress.total)
    processes.resuspend_all(run, emptying=(old,))  # the old ASG's only once it is empty
    return "drained"
