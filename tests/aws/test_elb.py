"""abfsm.aws.elb (classic ELB health, target group health) against in-process moto."""

from __future__ import annotations

import pytest

from abfsm.aws.elb import Member
from abfsm.emulator.fixes import OUT_OF_SERVICE_REASON
from tests.support.aws_env import build_env, instance_ids


@pytest.fixture
def elb(services, api_calls):
    """The classic ELB adapter, its boto3 client's calls counted in `api_calls`."""
    api_calls.watch(services.elb._client)
    return services.elb


def test_classic_members_in_one_call(aws, elb, api_calls):
    """members() returns every registered instance, InService, from one DescribeInstanceHealth."""
    build_env(aws, "qa", active="a", active_count=4)
    members = elb.members("qa-public")
    assert api_calls.names == ["DescribeInstanceHealth"]
    assert sorted(m.id for m in members) == instance_ids(aws, "qa-a")
    assert {(m.state, m.reason, m.healthy) for m in members} == {("InService", "", True)}


def test_classic_stopped_instance_is_out_of_service_with_reason(aws, elb):
    """A stopped instance shows OutOfService with AWS's reason code; the others stay InService."""
    build_env(aws, "qa", active="a", active_count=3)
    stopped, *running = instance_ids(aws, "qa-a")
    aws("ec2").stop_instances(InstanceIds=[stopped])
    by_id = {m.id: m for m in elb.members("qa-public")}
    assert by_id[stopped] == Member(stopped, "OutOfService", OUT_OF_SERVICE_REASON)
    assert not by_id[stopped].healthy
    assert all(by_id[i].state == "InService" for i in running)


def test_classic_instance_recovers_when_started(aws, elb):
    """Starting a stopped instance again brings it back InService."""
    build_env(aws, "qa", active="a", active_count=2)
    target = instance_ids(aws, "qa-a")[0]
    aws("ec2").stop_instances(InstanceIds=[target])
    aws("ec2").start_instances(InstanceIds=[target])
    assert {m.id: m.state for m in elb.members("qa-public")}[target] == "InService"


def test_target_group_members_show_state_and_reason(aws, services):
    """TargetGroups.members lists each target with its state; a stopped one says why."""
    env = build_env(aws, "qa", active="a", active_count=3, classic_elb=False, target_groups=1)
    arn = env["target_groups"][0]
    stopped, *running = instance_ids(aws, "qa-a")
    aws("ec2").stop_instances(InstanceIds=[stopped])
    by_id = {m.id: m for m in services.elbv2.members(arn)}
    assert sorted(by_id) == instance_ids(aws, "qa-a")
    assert by_id[stopped] == Member(stopped, "unused", "Target.InvalidState")
    assert not by_id[stopped].healthy
    assert [by_id[i] for i in running] == [Member(i, "healthy", "") for i in running]


def test_target_group_members_in_one_call(aws, services, api_calls):
    """members(arn) makes a single DescribeTargetHealth call."""
    env = build_env(aws, "qa", active="a", active_count=3, classic_elb=False, target_groups=1)
    api_calls.watch(services.elbv2._client)
    assert len(services.elbv2.members(env["target_groups"][0])) == 3
    assert api_calls.names == ["DescribeTargetHealth"]


def test_deregistration_delay_reads_the_attribute(aws, services):
    """deregistration_delay returns the target group's configured delay, not the default."""
    env = build_env(aws, "qa", classic_elb=False, target_groups=1)
    arn = env["target_groups"][0]
    aws("elbv2").modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "120"}])
    assert services.elbv2.deregistration_delay(arn) == 120
