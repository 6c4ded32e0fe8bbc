"""inspect refuses a plan that a suspended scaling process would stall, before any change."""

from __future__ import annotations

import pytest

from abfsm.actions.inspect import check_processes, decide
from abfsm.aws.autoscaling import Group, Instance
from abfsm.context import Settings
from abfsm.errors import Refused


def group(name: str, desired: int, suspended: tuple[str, ...] = ()) -> Group:
    instances = tuple(Instance(f"i-{name}-{i}", "InService", "Healthy") for i in range(desired))
    return Group(name, 0, 10, desired, instances, ("qa-public",), (), suspended)


def plan_for(groups: dict[str, Group], **flags: object):
    settings = Settings(environment="qa", instance_count=2, **flags)  # type: ignore[arg-type]
    plan, _ = decide(settings, groups)
    return plan


def test_a_target_that_cannot_launch_is_refused_naming_the_fix():
    """qa-b (the target) with Launch suspended: Refused (exit 3) with the resume command."""
    groups = {"qa-a": group("qa-a", 2), "qa-b": group("qa-b", 0, ("Launch",))}
    with pytest.raises(Refused) as caught:
        check_processes(plan_for(groups), groups)
    assert "qa-b has the Launch process suspended" in str(caught.value)
    assert "resume-processes --auto-scaling-group-name qa-b --scaling-processes Launch" in str(caught.value)
    assert caught.value.exit_code == 3


def test_an_old_asg_that_cannot_terminate_is_refused():
    """qa-a (to be drained) with Terminate suspended: the drain would leave it serving."""
    groups = {"qa-a": group("qa-a", 2, ("Terminate",)), "qa-b": group("qa-b", 0)}
    with pytest.raises(Refused, match="qa-a has the Terminate process suspended"):
        check_processes(plan_for(groups), groups)


def test_zero_needs_terminate_on_the_active_asg():
    """--zero of an ASG that cannot Terminate is refused too."""
    groups = {"qa-a": group("qa-a", 2, ("Terminate",)), "qa-b": group("qa-b", 0)}
    with pytest.raises(Refused, match="qa-a has the Terminate"):
        check_processes(plan_for(groups, zero=True), groups)


def test_unrelated_suspensions_do_not_refuse():
    """AZRebalance or Launch suspended on the old ASG does not stall an A/B deployment."""
    groups = {"qa-a": group("qa-a", 2, ("AZRebalance", "Launch")), "qa-b": group("qa-b", 0, ("AZRebalance",))}
    check_processes(plan_for(groups), groups)  # no exception: the plan stands
    assert plan_for(groups).target == "qa-b"


def test_the_adapter_reads_suspended_processes(services, aws):
    """Group.suspended comes from DescribeAutoScalingGroups' SuspendedProcesses (moto)."""
    from tests.support.aws_env import build_env

    build_env(aws, "qa", active="a", active_count=1)
    aws("autoscaling").suspend_processes(AutoScalingGroupName="qa-b", ScalingProcesses=["Launch"])
    groups = services.autoscaling.describe(["qa-a", "qa-b"])
    assert groups["qa-b"].suspended == ("Launch",)
    assert groups["qa-a"].suspended == ()
