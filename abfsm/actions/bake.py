"""bake: after wait-elb, before drain, the new instances must keep serving for a while.

For `seconds` (param; default --bake-time, default 0) it re-checks, every --update-timeout,
that each new instance is still InService and Healthy in its ASG and healthy in every load
balancer of the plan, and (like the other waits) that no watched alarm is in ALARM. An
instance that drops out fails the state, naming it, where and when. 0 seconds passes at
once without an API call. Per poll: one DescribeAutoScalingGroups, one call per load
balancer, one DescribeAlarms per watched alarm set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abfsm.actions.alarms import alarm_calls
from abfsm.actions.base import AwsCall, Param, Run, action, describe_asg
from abfsm.actions.health import lb_health_calls, lb_members, lb_progress
from abfsm.actions.waiting import Progress, hold_for
from abfsm.context import Settings
from abfsm.errors import StateFailed

PARAMS = {
    "seconds": Param("number", doc="how long the new instances must keep serving "
                                   "(default: --bake-time)"),
    "alarms": Param("list[str]", default=[], doc="CloudWatch alarms watched besides --alarm"),
}


def bake_seconds(settings: Settings, params: Mapping[str, Any]) -> float:
    value = params.get("seconds")
    return float(settings.bake_time if value is None else value)


def _calls(settings: Settings, params: Mapping[str, Any]) -> list[AwsCall]:
    if bake_seconds(settings, params) <= 0:
        return []
    return [describe_asg("asg:target"), *lb_health_calls(settings),
            *alarm_calls(settings, params)]


def _planned(run: Run) -> tuple[str, list[str]]:
    return "baked", []  # reads only


@action({"baked"}, requires=("target",), params=PARAMS, calls=_calls, planner=_planned,
        doc="for `seconds` (default --bake-time) re-check each poll that every new instance "
            "still serves in its ASG and load balancers, and no watched alarm fires")
def bake(run: Run) -> str:
    plan = run.plan
    seconds = bake_seconds(run.settings, run.params)
    if seconds <= 0:
        run.log.info("bake.skipped", state=run.state, reason="bake time 0 (--bake-time)")
        return "baked"
    asg: str = plan.target  # type: ignore[assignment]
    ids = list(plan.instance_ids)
    if not ids:  # resumed: re-read which new instances serve now, once
        group = run.aws.autoscaling.describe([asg]).get(asg)
        ids = group.ready_ids if group else []
    if not ids:
        raise StateFailed(f"{run.state}: no new instance of {asg} is serving; nothing to bake")
    lbs = plan.load_balancers + plan.target_groups
    run.log.info("bake.started", state=run.state, asg=asg, seconds=seconds, instance_ids=ids,
                 load_balancers=lbs)

    def check() -> Progress:
        group = run.aws.autoscaling.describe([asg]).get(asg)
        in_group = {i.id: i for i in (group.instances if group else ())}
        dropped: list[dict[str, str]] = []
        for iid in ids:
            inst = in_group.get(iid)
            if inst is None or not inst.ready:
                dropped.append({"id": iid, "state": f"{inst.status if inst else 'gone'} in {asg}"})
        serving = ids
        if lbs:
            seen = lb_progress(lb_members(run.aws, plan.load_balancers, plan.target_groups), ids)
            dropped += seen.not_ready
            serving = seen.ids
        ok = [i for i in serving if i not in {d["id"] for d in dropped}]
        return Progress(ready=len(ok), total=len(ids), done=bool(ids) and not dropped,
                        summary=f"{len(ids) - len(ok)} of {len(ids)} new instance(s) dropped out",
                        not_ready=dropped, what="still serving", ids=ok)

    hold_for(run, seconds, check)
    run.log.info("bake.finished", state=run.state, asg=asg, seconds=seconds, instances=len(ids))
    return "baked"
