"""abfsm.aws.autoscaling.AutoScaling against in-process moto (with abfsm/emulator/fixes.py)."""

from __future__ import annotations

import dataclasses

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from abfsm.aws.autoscaling import Group, Instance
from abfsm.errors import AwsError
from tests.support.aws_env import build_env, capacities, instance_ids


@pytest.fixture
def asg(services, api_calls):
    """The AutoScaling adapter, its boto3 client's calls counted in `api_calls`."""
    api_calls.watch(services.autoscaling._client)
    return services.autoscaling


def test_describe_returns_both_groups_in_one_call(aws, asg, api_calls):
    """Both ASGs come back from a single DescribeAutoScalingGroups call."""
    build_env(aws, "qa", active="a", active_count=4)
    groups = asg.describe(["qa-a", "qa-b"])
    assert sorted(groups) == ["qa-a", "qa-b"]
    assert api_calls.names == ["DescribeAutoScalingGroups"]


def test_describe_maps_groups_to_frozen_dataclasses(aws, asg):
    """A Group carries sizes and instances and cannot be modified."""
    build_env(aws, "qa", active="a", active_count=3, active_min=1, max_size=7)
    groups = asg.describe(["qa-a", "qa-b"])
    a, b = groups["qa-a"], groups["qa-b"]
    assert isinstance(a, Group)
    assert (a.min_size, a.max_size, a.desired, a.populated) == (1, 7, 3, True)
    assert (b.min_size, b.max_size, b.desired, b.instances, b.populated) == (0, 7, 0, (), False)
    assert sorted(i.id for i in a.instances) == instance_ids(aws, "qa-a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.desired = 0  # type: ignore[misc]


def test_describe_reports_each_instance_lifecycle_and_health(aws, asg):
    """Instances carry LifecycleState and HealthStatus; an Unhealthy one is not ready."""
    build_env(aws, "qa", active="a", active_count=3)
    sick = instance_ids(aws, "qa-a")[0]
    aws("autoscaling").set_instance_health(InstanceId=sick, HealthStatus="Unhealthy")
    group = asg.describe(["qa-a"])["qa-a"]
    by_id = {i.id: i for i in group.instances}
    assert by_id[sick] == Instance(sick, "InService", "Unhealthy")
    assert not by_id[sick].ready and by_id[sick].status == "InService/Unhealthy"
    assert group.ready_ids == sorted(set(by_id) - {sick})
    assert all(i.status == "InService/Healthy" for i in group.instances if i.id != sick)


def test_describe_leaves_missing_names_out(aws, asg):
    """A name with no ASG is simply absent from the answer."""
    build_env(aws, "qa")
    assert list(asg.describe(["qa-a", "qa-missing"])) == ["qa-a"]


def test_describe_reports_attached_load_balancers(aws, asg):
    """A Group names its classic ELBs and target group ARNs."""
    env = build_env(aws, "qa", target_groups=1)
    group = asg.describe(["qa-b"])["qa-b"]
    assert group.load_balancer_names == ("qa-public",)
    assert group.target_group_arns == tuple(env["target_groups"])


def test_update_capacity_sets_desired_min_and_max_in_one_call(aws, asg, api_calls):
    """update_capacity moves desired, MinSize and MaxSize in one UpdateAutoScalingGroup call."""
    build_env(aws, "qa", active="a", max_size=10)
    asg.update_capacity("qa-b", desired=12, min_size=2, max_size=12)
    assert api_calls.names == ["UpdateAutoScalingGroup"]
    assert capacities(aws, ["qa-b"])["qa-b"] == {"desired": 12, "min": 2, "max": 12,
                                                 "instances": 12}


def test_update_capacity_logs_the_mutating_call(aws, asg):
    """update_capacity logs one aws.call event with the service, action and parameters."""
    build_env(aws, "qa")
    with capture_logs() as logs:
        asg.update_capacity("qa-b", desired=2)
    calls = [e for e in logs if e["event"] == "aws.call"]
    assert calls == [{"event": "aws.call", "log_level": "info", "service": "autoscaling",
                      "action": "UpdateAutoScalingGroup",
                      "params": {"AutoScalingGroupName": "qa-b", "DesiredCapacity": 2}}]


def test_client_error_becomes_aws_error(aws, asg):
    """A ClientError surfaces as AwsError naming service, action, code and AWS's message."""
    build_env(aws, "qa")
    with pytest.raises(AwsError) as caught:
        asg.update_capacity("qa-missing", desired=1)
    assert str(caught.value) == ("autoscaling UpdateAutoScalingGroup failed: ValidationError: "
                                 "AutoScalingGroup name not found - null")
    assert isinstance(caught.value.__cause__, ClientError)


def test_drain_without_min_size_is_refused_by_aws(aws, asg):
    """Desired 0 on a group with MinSize 2 and no MinSize change fails with ValidationError."""
    build_env(aws, "qa", active="a", active_count=4, active_min=2)
    with pytest.raises(AwsError, match=r"UpdateAutoScalingGroup failed: ValidationError: "
                                       r"Desired capacity:0 must be between"):
        asg.update_capacity("qa-a", desired=0)
    assert capacities(aws, ["qa-a"])["qa-a"] == {"desired": 4, "min": 2, "max": 10,
                                                 "instances": 4}


def test_drain_with_min_size_zero_empties_the_group(aws, asg):
    """Desired 0 together with MinSize 0 drains a group whose MinSize was 2."""
    build_env(aws, "qa", active="a", active_count=4, active_min=2)
    asg.update_capacity("qa-a", desired=0, min_size=0)
    assert capacities(aws, ["qa-a"])["qa-a"] == {"desired": 0, "min": 0, "max": 10,
                                                 "instances": 0}
