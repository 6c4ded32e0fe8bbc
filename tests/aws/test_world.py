"""The emulator's world model over in-process moto: each behaviour in time, in frozen time
moved on by the test (`world` fixture, tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from abfsm.emulator import world as world_model
from tests.support.aws_env import build_env, instance_ids

LAUNCH = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATE = "autoscaling:EC2_INSTANCE_TERMINATING"


def lifecycle(aws: Any, name: str) -> dict[str, str]:
    [group] = aws("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def classic(aws: Any, elb: str = "qa-public") -> dict[str, tuple[str, str]]:
    states = aws("elb").describe_instance_health(LoadBalancerName=elb)["InstanceStates"]
    return {s["InstanceId"]: (s["State"], s["Description"]) for s in states}


def targets(aws: Any, arn: str) -> dict[str, tuple[str, str]]:
    found = aws("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason", ""))
            for d in found}


def scale(aws: Any, name: str, desired: int) -> None:
    aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName=name, DesiredCapacity=desired)


def hook(aws: Any, name: str, transition: str, *, timeout: int = 300,
         default: str = "ABANDON", group: str = "qa-b") -> None:
    aws("autoscaling").put_lifecycle_hook(LifecycleHookName=name, AutoScalingGroupName=group,
                                          LifecycleTransition=transition, HeartbeatTimeout=timeout,
                                          DefaultResult=default)


def complete(aws: Any, iid: str, result: str, name: str = "warm-up") -> None:
    aws("autoscaling").complete_lifecycle_action(
        LifecycleHookName=name, AutoScalingGroupName="qa-b", LifecycleActionResult=result,
        InstanceId=iid)


def test_instances_launch_pending_and_are_in_service_after_boot(aws, world):
    """A new instance is Pending, not in the ELB, until the boot time has passed."""
    build_env(aws, "qa", active=None)
    scale(aws, "qa-b", 2)
    ids = instance_ids(aws, "qa-b")
    assert lifecycle(aws, "qa-b") == {i: "Pending" for i in ids}
    world.advance(world.boot_s - 1)
    assert set(lifecycle(aws, "qa-b").values()) == {"Pending"} and classic(aws) == {}
    world.advance(1)
    assert lifecycle(aws, "qa-b") == {i: "InService" for i in ids}
    assert set(classic(aws)) == set(ids)


def test_pending_instances_count_towards_the_desired_capacity(aws, world):
    """Raising the desired capacity while instances boot launches only the difference."""
    build_env(aws, "qa", active=None)
    scale(aws, "qa-b", 2)
    scale(aws, "qa-b", 3)
    assert list(lifecycle(aws, "qa-b").values()) == ["Pending"] * 3


def test_classic_elb_in_service_only_after_healthy_threshold_times_interval(aws, world):
    """HealthyThreshold 3 x Interval 10: OutOfService (registration in progress) for 30 s."""
    build_env(aws, "qa", active=None)
    aws("elb").configure_health_check(LoadBalancerName="qa-public", HealthCheck={
        "Target": "HTTP:8080/", "Interval": 10, "Timeout": 5, "UnhealthyThreshold": 2,
        "HealthyThreshold": 3})
    scale(aws, "qa-b", 1)
    [iid] = instance_ids(aws, "qa-b")
    world.advance(world.boot_s + 29)
    assert classic(aws) == {iid: ("OutOfService", world_model.REGISTERING)}
    world.advance(1)
    assert classic(aws)[iid][0] == "InService"


def test_classic_elb_without_health_check_uses_aws_defaults(aws, world):
    """No HealthCheck configured: AWS's defaults, 10 x 30 s, apply."""
    build_env(aws, "qa", active=None)
    scale(aws, "qa-b", 1)
    world.advance(world.boot_s + 299)
    assert {s for s, _ in classic(aws).values()} == {"OutOfService"}
    world.advance(1)
    assert {s for s, _ in classic(aws).values()} == {"InService"}


def test_target_group_initial_until_its_threshold_times_interval(aws, world):
    """HealthyThresholdCount 2 x HealthCheckInterval 15: `initial` for 30 s, then healthy."""
    env = build_env(aws, "qa", active=None, classic_elb=False, target_groups=1)
    [arn] = env["target_groups"]
    aws("elbv2").modify_target_group(TargetGroupArn=arn, HealthyThresholdCount=2,
                                     HealthCheckIntervalSeconds=15)
    scale(aws, "qa-b", 1)
    [iid] = instance_ids(aws, "qa-b")
    assert targets(aws, arn) == {}
    world.advance(world.boot_s + 29)
    assert targets(aws, arn) == {iid: ("initial", "Elb.RegistrationInProgress")}
    world.advance(1)
    assert targets(aws, arn) == {iid: ("healthy", "")}


def test_scaled_in_target_drains_for_the_deregistration_delay(aws, world):
    """Scaled in: the instance is Terminating and its target draining for 60 s, then both gone."""
    env = build_env(aws, "qa", active="a", active_count=1, classic_elb=False, target_groups=1)
    [arn] = env["target_groups"]
    aws("elbv2").modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "60"}])
    world.advance(3600)
    [iid] = instance_ids(aws, "qa-a")
    scale(aws, "qa-a", 0)
    assert lifecycle(aws, "qa-a") == {iid: "Terminating"}
    assert targets(aws, arn) == {iid: ("draining", "Target.DeregistrationInProgress")}
    world.advance(59)
    assert lifecycle(aws, "qa-a") == {iid: "Terminating"}
    world.advance(1)
    assert (lifecycle(aws, "qa-a"), targets(aws, arn)) == ({}, {})
    [ec2] = aws("ec2").describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
    assert ec2["State"]["Name"] == "terminated"


def test_classic_connection_draining_keeps_the_instance_terminating(aws, world):
    """Connection draining 45 s: deregistration in progress (InService) while it drains."""
    build_env(aws, "qa", active="a", active_count=1)
    aws("elb").modify_load_balancer_attributes(LoadBalancerName="qa-public", LoadBalancerAttributes={
        "ConnectionDraining": {"Enabled": True, "Timeout": 45}})
    world.advance(3600)
    [iid] = instance_ids(aws, "qa-a")
    scale(aws, "qa-a", 0)
    assert classic(aws) == {iid: ("InService", world_model.DEREGISTERING)}
    world.advance(44)
    assert lifecycle(aws, "qa-a") == {iid: "Terminating"}
    world.advance(1)
    assert (lifecycle(aws, "qa-a"), classic(aws)) == ({}, {})


def test_launch_hook_holds_pending_wait_until_continue(aws, world):
    """A launch hook: Pending:Wait after boot until CompleteLifecycleAction CONTINUE."""
    build_env(aws, "qa", active=None)
    hook(aws, "warm-up", LAUNCH)
    scale(aws, "qa-b", 1)
    [iid] = instance_ids(aws, "qa-b")
    world.advance(world.boot_s + 200)
    assert lifecycle(aws, "qa-b") == {iid: "Pending:Wait"} and classic(aws) == {}
    complete(aws, iid, "CONTINUE")
    assert lifecycle(aws, "qa-b") == {iid: "InService"}
    assert set(classic(aws)) == {iid}


def test_abandoned_instance_is_terminated_and_replaced(aws, world):
    """ABANDON terminates the instance and the group launches a new Pending one."""
    build_env(aws, "qa", active=None)
    hook(aws, "warm-up", LAUNCH)
    scale(aws, "qa-b", 1)
    [first] = instance_ids(aws, "qa-b")
    world.advance(world.boot_s)
    complete(aws, first, "ABANDON")
    [second] = instance_ids(aws, "qa-b")
    assert second != first and lifecycle(aws, "qa-b") == {second: "Pending"}
    [ec2] = aws("ec2").describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"]
    assert ec2["State"]["Name"] == "terminated"


@pytest.mark.parametrize(("default", "after"), [("CONTINUE", "InService"), ("ABANDON", "replaced")])
def test_heartbeat_timeout_applies_the_default_result(aws, world, default, after):
    """No answer within HeartbeatTimeout: the hook's DefaultResult happens."""
    build_env(aws, "qa", active=None)
    hook(aws, "warm-up", LAUNCH, timeout=120, default=default)
    scale(aws, "qa-b", 1)
    [iid] = instance_ids(aws, "qa-b")
    world.advance(world.boot_s + 119)
    assert lifecycle(aws, "qa-b") == {iid: "Pending:Wait"}
    world.advance(1)
    now = lifecycle(aws, "qa-b")
    if after == "InService":
        assert now == {iid: "InService"}
    else:
        assert iid not in now and list(now.values()) == ["Pending"]


def test_a_heartbeat_restarts_the_timeout(aws, world):
    """RecordLifecycleActionHeartbeat: the instance waits another HeartbeatTimeout from then."""
    build_env(aws, "qa", active=None)
    hook(aws, "warm-up", LAUNCH, timeout=100)
    scale(aws, "qa-b", 1)
    [iid] = instance_ids(aws, "qa-b")
    world.advance(world.boot_s + 90)
    aws("autoscaling").record_lifecycle_action_heartbeat(
        LifecycleHookName="warm-up", AutoScalingGroupName="qa-b", InstanceId=iid)
    world.advance(99)
    assert lifecycle(aws, "qa-b") == {iid: "Pending:Wait"}


def test_termination_hook_holds_terminating_wait(aws, world):
    """A termination hook: Terminating:Wait after draining until completed, then gone."""
    build_env(aws, "qa", active="b", active_count=1)
    hook(aws, "flush-logs", TERMINATE)
    world.advance(3600)
    [iid] = instance_ids(aws, "qa-b")
    scale(aws, "qa-b", 0)
    world.advance(1)
    assert lifecycle(aws, "qa-b") == {iid: "Terminating:Wait"}
    complete(aws, iid, "CONTINUE", name="flush-logs")
    assert lifecycle(aws, "qa-b") == {}


def test_completing_an_instance_that_is_not_waiting_is_a_validation_error(aws, world):
    """CompleteLifecycleAction for an InService instance: AWS's ValidationError."""
    build_env(aws, "qa", active="b", active_count=1)
    world.advance(3600)
    [iid] = instance_ids(aws, "qa-b")
    with pytest.raises(ClientError, match=f"No active Lifecycle Action found with instance ID {iid}"):
        complete(aws, iid, "CONTINUE")


def warm_pool(aws: Any) -> dict[str, str]:
    found = aws("autoscaling").describe_warm_pool(AutoScalingGroupName="qa-b")["Instances"]
    return {i["InstanceId"]: i["LifecycleState"] for i in found}


def test_warm_pool_prepares_instances_outside_the_group(aws, world):
    """PutWarmPool: MaxGroupPreparedCapacity - desired instances boot (Warmed:Pending), then
    wait stopped (Warmed:Stopped); none of them is in the group or its ELB."""
    build_env(aws, "qa", active=None)
    aws("autoscaling").put_warm_pool(AutoScalingGroupName="qa-b", MaxGroupPreparedCapacity=2)
    pool = warm_pool(aws)
    assert list(pool.values()) == ["Warmed:Pending"] * 2
    world.advance(world.boot_s)
    assert warm_pool(aws) == {i: "Warmed:Stopped" for i in pool}
    reservations = aws("ec2").describe_instances(InstanceIds=list(pool))["Reservations"]
    assert {i["State"]["Name"] for r in reservations for i in r["Instances"]} == {"stopped"}
    assert (lifecycle(aws, "qa-b"), classic(aws)) == ({}, {})


def test_scale_out_takes_prepared_instances_first(aws, world):
    """A scale-out takes a prepared instance from the warm pool: Pending for the warm start
    only, then InService; the pool keeps the rest."""
    build_env(aws, "qa", active=None)
    aws("autoscaling").put_warm_pool(AutoScalingGroupName="qa-b", MaxGroupPreparedCapacity=2)
    world.advance(world.boot_s)
    pool = warm_pool(aws)
    scale(aws, "qa-b", 1)
    [taken] = instance_ids(aws, "qa-b")
    assert taken in pool and lifecycle(aws, "qa-b") == {taken: "Pending"}
    assert warm_pool(aws) == {i: "Warmed:Stopped" for i in pool if i != taken}
    world.advance(world.warm_boot_s)
    assert lifecycle(aws, "qa-b") == {taken: "InService"}


def test_without_the_world_moto_stays_instant(aws):
    """Not activated: moto's own world, new instances InService and in the ELB at once."""
    build_env(aws, "qa", active=None)
    scale(aws, "qa-b", 2)
    ids = instance_ids(aws, "qa-b")
    assert lifecycle(aws, "qa-b") == {i: "InService" for i in ids}
    assert {s for s, _ in classic(aws).values()} == {"InService"}


def test_clock_scale_and_per_call_steps():
    """World time = offset + scale x real time, plus per_call seconds on each call."""
    real = [100.0]
    clock = world_model.WorldClock(scale=10, real=lambda: real[0])
    real[0] += 2
    assert clock.now() == 20
    clock.set_scale(0)
    real[0] += 50
    clock.advance(5)
    clock.per_call = 3
    clock.on_call()
    assert clock.now() == 28
