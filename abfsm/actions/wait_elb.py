"""wait-elb: every target instance InService in each classic ELB / healthy in each target group.

One DescribeInstanceHealth per classic ELB and one DescribeTargetHealth per target group per
poll, for all instances at once, and no DescribeAutoScalingGroups: the instances waited for
are the new ASG's, recorded by wait-instances. Only they count; the old ASG's instances,
registered in the same load balancers, never count as serving the new deployment. A timeout
names each load balancer and the instances not yet healthy there with their reason codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions.alarms import alarm_calls
from abfsm.actions.base import AwsCall, Run, action, describe_asg
from abfsm.actions.health import lb_health_calls, lb_members, lb_progress
from abfsm.context import Settings
from abfsm.actions.waiting import Progress, wait_until


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    if settings.no_elb_check:
        return []
    return [*lb_health_calls(settings), describe_asg("asg:target"),  # the ASG: only on resume
            *alarm_calls(settings)]


@action({"healthy"}, requires=("target",), calls=_calls, planner=lambda run: ("healthy", []),
        doc="poll until every new instance is InService in each classic ELB and healthy in "
            "each target group")
def wait_elb(run: Run) -> str:
    plan = run.plan
    if not plan.load_balancers and not plan.target_groups:
        run.log.info("wait_elb.skipped", reason=plan.lb_source or "no load balancer")
        return "healthy"
    ids = list(plan.instance_ids)
    if not ids:  # resumed: the instance list is re-read once, not trusted from the record
        target = plan.target or ""
        group = run.aws.autoscaling.describe([target]).get(target)
        ids = group.ready_ids if group else []

    def check() -> Progress:
        return lb_progress(lb_members(run.aws, plan.load_balancers, plan.target_groups), ids)

    wait_until(run, check, alarms=True)
    return "healthy"
