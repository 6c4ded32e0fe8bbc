"""The emulator's world model over HTTP (moto_server with `/_abfsm/world`), and `abfsm deploy`
against it: instances boot, pass health checks and drain while the CLI waits, in virtual time
(the world advances `per_call` seconds on every AWS call; the CLI sleeps virtually)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.aws_env import build_env, instance_ids


@pytest.fixture
def world(server: Any) -> Iterator[Any]:
    """The session's moto_server with the world model on, frozen; off again afterwards."""
    server.world(enabled=True)
    yield lambda **change: server.world(**change)
    server.world(enabled=False)


def lifecycle(make: Any, name: str) -> dict[str, str]:
    [group] = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def classic(make: Any) -> dict[str, str]:
    states = make("elb").describe_instance_health(LoadBalancerName="qa-public")["InstanceStates"]
    return {s["InstanceId"]: s["State"] for s in states}


def health_check(make: Any, threshold: int, interval: int) -> None:
    make("elb").configure_health_check(LoadBalancerName="qa-public", HealthCheck={
        "Target": "HTTP:8080/", "Interval": interval, "Timeout": 5, "UnhealthyThreshold": 2,
        "HealthyThreshold": threshold})


def test_world_is_off_by_default(server):
    """The session's server answers as moto's instant world unless a test switches it on."""
    assert server.world() == {"enabled": False}


def test_pending_then_in_service_then_healthy_over_http(world, make):
    """Over HTTP: Pending for the boot time, then InService but OutOfService in the ELB for
    HealthyThreshold x Interval, then InService there too."""
    build_env(make, "qa", active=None)
    health_check(make, threshold=2, interval=10)
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    [iid] = instance_ids(make, "qa-b")
    assert lifecycle(make, "qa-b") == {iid: "Pending"}
    assert world(advance=40)["instances"][iid]["state"] == "InService"
    assert classic(make) == {iid: "OutOfService"}
    world(advance=20)
    assert classic(make) == {iid: "InService"}


def test_target_group_initial_then_healthy_then_draining_over_http(world, make):
    """Over HTTP: a target is initial, then healthy; scaled in, draining for the delay."""
    env = build_env(make, "qa", active=None, classic_elb=False, target_groups=1)
    [arn] = env["target_groups"]
    elbv2 = make("elbv2")
    elbv2.modify_target_group(TargetGroupArn=arn, HealthyThresholdCount=2,
                              HealthCheckIntervalSeconds=10)
    elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])

    def health() -> list[str]:
        return [d["TargetHealth"]["State"] for d in elbv2.describe_target_health(
            TargetGroupArn=arn)["TargetHealthDescriptions"]]

    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    world(advance=40)
    assert health() == ["initial"]
    world(advance=20)
    assert health() == ["healthy"]
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=0)
    assert health() == ["draining"]
    assert list(lifecycle(make, "qa-b").values()) == ["Terminating"]
    world(advance=30)
    assert (health(), lifecycle(make, "qa-b")) == ([], {})


def test_complete_lifecycle_action_over_http(world, make):
    """Over HTTP: Pending:Wait until CompleteLifecycleAction; ABANDON replaces the instance."""
    build_env(make, "qa", active=None)
    asg = make("autoscaling")
    asg.put_lifecycle_hook(LifecycleHookName="warm-up", AutoScalingGroupName="qa-b",
                           LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                           HeartbeatTimeout=300, DefaultResult="ABANDON")
    asg.update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=2)
    world(advance=40)
    first, second = instance_ids(make, "qa-b")
    assert lifecycle(make, "qa-b") == {first: "Pending:Wait", second: "Pending:Wait"}
    for iid, result in ((first, "CONTINUE"), (second, "ABANDON")):
        asg.complete_lifecycle_action(LifecycleHookName="warm-up", AutoScalingGroupName="qa-b",
                                      LifecycleActionResult=result, InstanceId=iid)
    now = lifecycle(make, "qa-b")
    assert now.pop(first) == "InService" and second not in now
    assert list(now.values()) == ["Pending"]


def test_heartbeat_timeout_over_http(world, make):
    """Over HTTP: no CompleteLifecycleAction within HeartbeatTimeout: DefaultResult CONTINUE."""
    build_env(make, "qa", active=None)
    asg = make("autoscaling")
    asg.put_lifecycle_hook(LifecycleHookName="warm-up", AutoScalingGroupName="qa-b",
                           LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                           HeartbeatTimeout=60, DefaultResult="CONTINUE")
    asg.update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    [iid] = instance_ids(make, "qa-b")
    assert world(advance=40 + 59)["instances"][iid]["state"] == "Pending:Wait"
    world(advance=1)
    assert lifecycle(make, "qa-b") == {iid: "InService"}


def _serving_environment(make: Any, world: Any) -> None:
    build_env(make, "qa", active="a", active_count=2)
    health_check(make, threshold=2, interval=10)
    world(advance=3600)  # qa-a booted and healthy long ago


def test_deploy_waits_for_boot_and_health_checks(world, make, cli):
    """abfsm deploy against the world model succeeds after polls that saw the new instances
    Pending, then OutOfService in the ELB; they are InService and healthy at the end."""
    _serving_environment(make, world)
    world(per_call=5)  # every AWS call moves the world 5 s on
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "2",
                 extra_env={"ABFSM_VIRTUAL_CLOCK": "1"})
    assert result.returncode == 0, result.stderr
    polls = result.named("wait.progress")
    seen = {(p["state"], n["state"]) for p in polls for n in p["not_ready"]}
    assert ("wait-instances", "Pending/Healthy") in seen
    assert ("wait-elb", "OutOfService") in seen
    new = instance_ids(make, "qa-b")
    assert lifecycle(make, "qa-b") == {i: "InService" for i in new}
    assert {classic(make)[i] for i in new} == {"InService"}


def test_timeout_while_still_pending_names_them_pending(world, make, cli):
    """A frozen world: the new instances never boot; wait-instances times out (virtual time)
    and the failure names each of them as Pending."""
    _serving_environment(make, world)
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "2",
                 "--health-check-timeout", "120", extra_env={"ABFSM_VIRTUAL_CLOCK": "1"})
    assert result.returncode == 1
    [failed] = result.named("state.failed")
    assert failed["state"] == "wait-instances"
    assert "Pending" in failed["error"]
    assert all(iid in failed["error"] for iid in instance_ids(make, "qa-b"))
    assert set(lifecycle(make, "qa-b").values()) == {"Pending"}
