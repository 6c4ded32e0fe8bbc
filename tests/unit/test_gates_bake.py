"""bake against in-process moto: 0 s passes without a call; the new instances must keep
serving in the ASG and the load balancer for the whole bake time, or the state fails."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm.actions.bake import bake
from abfsm.context import Plan
from abfsm.errors import AlarmFired, StateFailed
from tests.support.aws_env import build_env, instance_ids
from tests.support.gates import gate_run, put_alarm


class NoAws:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"bake touched AWS ({name})")


def serving_plan(aws: Any) -> Plan:
    build_env(aws, "qa", active="b", active_count=3)  # qa-b plays the new ASG, serving
    return Plan(mode="ab", active="qa-a", target="qa-b", target_count=3, steps=[3],
                load_balancers=["qa-public"], instance_ids=instance_ids(aws, "qa-b"))


def reads(logs: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in logs if e["event"] == "aws.read"]


def test_bake_time_zero_passes_at_once_without_an_api_call(tmp_path, clock):
    """--bake-time 0 (the default): baked at once, no AWS call, no sleep."""
    run = gate_run(tmp_path, clock, "bake", aws=NoAws(), plan=Plan(target="qa-b"))
    with capture_logs() as logs:
        assert bake(run) == "baked"
    assert clock.sleeps == [] and [e["event"] for e in logs] == ["bake.skipped"]


def test_bake_watches_for_the_whole_time(tmp_path, clock, aws, services):
    """300 s at 30 s: 11 polls, each one ASG read and one ELB read, then baked."""
    run = gate_run(tmp_path, clock, "bake", aws=services, plan=serving_plan(aws),
                   bake_time=300, update_timeout=30)
    with capture_logs() as logs:
        assert bake(run) == "baked"
    assert clock.sleeps == [30.0] * 10
    assert reads(logs) == ["DescribeAutoScalingGroups", "DescribeInstanceHealth"] * 11
    assert [e["event"] for e in logs if e["event"].startswith("bake.")] == [
        "bake.started", "bake.finished"]


def test_seconds_param_overrides_bake_time(tmp_path, clock, aws, services):
    """`params: {seconds: 60}` bakes 60 s whatever --bake-time says."""
    run = gate_run(tmp_path, clock, "bake", aws=services, plan=serving_plan(aws),
                   bake_time=600, update_timeout=30, params={"seconds": 60, "alarms": []})
    assert bake(run) == "baked"
    assert sum(clock.sleeps) == 60


def test_an_instance_dropping_out_of_the_load_balancer_fails_the_state(tmp_path, clock, aws, services):
    """A new instance stopped after 60 s (OutOfService in qa-public) fails bake at the next poll,
    naming the instance, the load balancer and when."""
    plan = serving_plan(aws)
    victim = plan.instance_ids[0]
    run = gate_run(tmp_path, clock, "bake", aws=services, plan=plan, bake_time=300,
                   update_timeout=30)
    clock.on_sleep(lambda: aws("ec2").stop_instances(InstanceIds=[victim])
                   if sum(clock.sleeps) == 60 else None)
    with pytest.raises(StateFailed) as caught:
        bake(run)
    message = str(caught.value)
    assert message.startswith("bake: 1 of 3 new instance(s) dropped out after 60 s of 300 s")
    assert message.endswith(f"; qa-public: 1 OutOfService (Instance: {victim})")


def test_an_instance_unhealthy_in_its_asg_fails_the_state(tmp_path, clock, aws, services):
    """An instance the ASG marks Unhealthy has dropped out too (named with its ASG status)."""
    plan = serving_plan(aws)
    victim = plan.instance_ids[1]
    run = gate_run(tmp_path, clock, "bake", aws=services, plan=plan, bake_time=120,
                   update_timeout=30)
    aws("autoscaling").set_instance_health(InstanceId=victim, HealthStatus="Unhealthy")
    with pytest.raises(StateFailed, match=rf"1 InService/Unhealthy in qa-b \({victim}\)"):
        bake(run)


def test_an_alarm_firing_during_bake_fails_it(tmp_path, clock, aws, services):
    """A watched alarm going into ALARM mid-bake fails the state naming it and its reason."""
    put_alarm(aws, "qa-5xx")
    run = gate_run(tmp_path, clock, "bake", aws=services, plan=serving_plan(aws),
                   bake_time=300, update_timeout=30, alarms=["qa-5xx"])
    clock.on_sleep(lambda: aws("cloudwatch").set_alarm_state(
        AlarmName="qa-5xx", StateValue="ALARM", StateReason="5xx > 10")
        if sum(clock.sleeps) == 90 else None)
    with pytest.raises(AlarmFired, match="bake: alarm qa-5xx is in ALARM: 5xx > 10"):
        bake(run)
    assert sum(clock.sleeps) == 90


def test_resumed_bake_rereads_the_serving_instances(tmp_path, clock, aws, services):
    """Resumed (no instance ids on record): the ASG's ready instances are baked."""
    plan = serving_plan(aws)
    plan.instance_ids = []
    run = gate_run(tmp_path, clock, "bake", aws=services, plan=plan, bake_time=30,
                   update_timeout=30)
    with capture_logs() as logs:
        assert bake(run) == "baked"
    started = [e for e in logs if e["event"] == "bake.started"][0]
    assert started["instance_ids"] == instance_ids(aws, "qa-b")
