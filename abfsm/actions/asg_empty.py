"""Setting an ASG to zero (MinSize too) and, optionally, waiting until it has drained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abfsm.actions import lifecycle
from abfsm.actions.base import Run
from abfsm.actions.health import drain_progress, lb_members
from abfsm.actions.waiting import Progress, wait_until
from abfsm.aws.autoscaling import describe_update, update_params


def zero_asg(run: Run, asg: str) -> None:
    params = zero_params(asg)
    run.aws.autoscaling.update_capacity(asg, desired=params["DesiredCapacity"],
                                        min_size=params["MinSize"])


def zero_params(asg: str) -> dict[str, Any]:
    """The UpdateAutoScalingGroup parameters that zero an ASG (MinSize too)."""
    return update_params(asg, desired=0, min_size=0)


def planned_zero(asg: str | None) -> list[str]:
    return [describe_update(zero_params(asg))] if asg else []


def wait_empty(run: Run, asg: str, old_ids: Sequence[str] = (), *,
               load_balancers: Sequence[str] = (), target_groups: Sequence[str] = ()) -> Progress:
    """Until `asg` has no instances and none of its instances is registered any more.

    Per poll: one DescribeAutoScalingGroups, plus one DescribeInstanceHealth per classic ELB
    and one DescribeTargetHealth per target group while there are old instances to look for.
    A target is deregistered when the load balancer no longer lists it; `draining` is not
    yet (see health.gone). On AWS the group keeps an instance (Terminating) until its
    deregistration delay has passed, and in `Terminating:Wait` while a termination lifecycle
    hook holds it: both are waited for, within the state's timeout. The load balancer check
    also covers targets that outlive the group's view of them.
    """
    known = list(dict.fromkeys(old_ids))
    check_lbs = bool(load_balancers or target_groups)

    def check() -> Progress:
        group = run.aws.autoscaling.describe([asg]).get(asg)
        # A warm pool's instances are not the group's capacity and stay in the pool.
        instances = [i for i in group.instances if not lifecycle.warmed(i)] if group else []
        known.extend(i.id for i in instances if i.id not in known)
        members = lb_members(run.aws, load_balancers, target_groups) if check_lbs and known else {}
        return drain_progress(asg, instances, members, known)

    return wait_until(run, check)
