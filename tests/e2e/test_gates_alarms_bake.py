"""Bake and alarm gates end to end: the CLI against moto_server with CloudWatch alarms
(set_alarm_state), a fault proxy choosing the poll at which the world changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.aws_env import build_env, capacities, elb_states, instance_ids
from tests.support.fault_proxy import FaultProxy
from tests.support.gates import put_alarm

ROOT = Path(__file__).resolve().parents[2]
ASGS = ["qa-a", "qa-b"]
DEPLOY = ("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "4",
          "--update-timeout", "30")
VIRTUAL = {"ABFSM_VIRTUAL_CLOCK": "1"}


def at_call(proxy: FaultProxy, action: str, n: int, callback: Callable[[], Any]) -> None:
    """Run `callback` just before the n-th request for `action` reaches moto."""
    seen = [0]

    def count() -> None:
        seen[0] += 1
        if seen[0] == n:
            callback()
        else:
            proxy.before(action, count)

    proxy.before(action, count)


def calls_of(server: Any, action: str) -> int:
    return sum(1 for c in server.calls() if c["action"] == action)


def test_without_gates_a_4_instance_deploy_makes_5_api_calls(cli, make, server):
    """No --bake-time, no --alarm: still 5 AWS calls (the bake state makes none)."""
    build_env(make, "qa", active="a", active_count=4)
    server.reset_calls()
    result = cli(*DEPLOY)
    assert result.returncode == 0, result.stderr
    assert len(server.calls()) == 5
    assert ("bake", "drain", "baked") in result.transitions
    assert [e["event"] for e in result.events if e["event"].startswith("bake.")] == ["bake.skipped"]


def test_one_alarm_set_adds_one_call_per_poll(cli, make, server):
    """--alarm x2, --bake-time 60 at 30 s: inspect's check + one DescribeAlarms per poll of
    wait-instances (1), wait-elb (1) and bake (3) = 6, and nothing else extra."""
    build_env(make, "qa", active="a", active_count=4)
    put_alarm(make, "qa-5xx")
    put_alarm(make, "qa-latency")
    server.reset_calls()
    result = cli(*DEPLOY, "--alarm", "qa-5xx", "--alarm", "qa-latency", "--bake-time", "60",
                 extra_env=VIRTUAL)
    assert result.returncode == 0, result.stderr
    polls = result.named("wait.progress")
    assert [p["state"] for p in polls] == ["wait-instances", "wait-elb", "bake", "bake", "bake"]
    assert calls_of(server, "DescribeAlarms") == 1 + len(polls)
    # bake's polls: one ASG and one ELB read each; the deploy's own 5 calls besides
    assert len(server.calls()) == 5 + 6 + 3 * 2


def test_a_missing_alarm_is_refused_before_anything_changes(cli, make, server):
    """--alarm naming no alarm: exit 3 from inspect, naming it; no mutating AWS call."""
    build_env(make, "qa", active="a", active_count=4)
    put_alarm(make, "qa-5xx")
    before = capacities(make, ASGS)
    server.reset_calls()
    result = cli(*DEPLOY, "--alarm", "qa-5xx", "--alarm", "qa-5xxx")
    assert result.returncode == 3
    assert "CloudWatch alarm qa-5xxx not found" in result.finished["error"]
    assert result.transitions[-1] == ("inspect", "refused", "refuse")
    assert server.mutating_calls() == [] and capacities(make, ASGS) == before


def test_an_alarm_already_in_alarm_is_refused(cli, make, server):
    """An alarm in ALARM before the deploy: exit 3, its StateReason named, nothing changed."""
    build_env(make, "qa", active="a", active_count=4)
    put_alarm(make, "qa-5xx", "ALARM", "Threshold Crossed: 1 datapoint [57.0] > 10.0")
    result = cli(*DEPLOY, "--alarm-prefix", "qa-")
    assert result.returncode == 3
    assert "alarm qa-5xx is in ALARM: Threshold Crossed: 1 datapoint [57.0] > 10.0" in result.finished["error"]
    assert capacities(make, ASGS)["qa-b"]["desired"] == 0


def test_an_alarm_firing_during_bake_rolls_back_while_the_old_asg_serves(cli, make, server):
    """The alarm goes into ALARM at bake's second poll: with --rollback-on-failure the new
    ASG goes back to 0, the old one still serves all its instances, exit 1, alarm named."""
    build_env(make, "qa", active="a", active_count=4)
    old_ids = instance_ids(make, "qa-a")
    put_alarm(make, "qa-5xx")
    with FaultProxy(server.endpoint) as proxy:
        # DescribeInstanceHealth #1 wait-elb, #2 bake's first poll (the proxy reads only
        # query-protocol calls; CloudWatch speaks CBOR): seen at bake's second poll
        at_call(proxy, "DescribeInstanceHealth", 2, lambda: make("cloudwatch").set_alarm_state(
            AlarmName="qa-5xx", StateValue="ALARM",
            StateReason="Threshold Crossed: 1 datapoint [31.0] > 10.0"))
        result = cli(*DEPLOY, "--alarm", "qa-5xx", "--bake-time", "300", "--rollback-on-failure",
                     extra_env={**VIRTUAL, "AWS_ENDPOINT_URL": proxy.endpoint})
    assert result.returncode == 1, result.stderr
    assert result.transitions[-2:] == [("bake", "rollback", "rollback"),
                                       ("rollback", "rolled-back", "rolled_back")]
    assert result.finished["error"] == ("bake: alarm qa-5xx is in ALARM: "
                                        "Threshold Crossed: 1 datapoint [31.0] > 10.0")
    assert result.named("alarm.fired")[0]["alarm"] == "qa-5xx"
    assert [p["state"] for p in result.named("wait.progress")][-1] == "bake"
    assert len([p for p in result.named("wait.progress") if p["state"] == "bake"]) == 1
    caps = capacities(make, ASGS)
    assert caps["qa-b"]["desired"] == 0 and caps["qa-a"]["desired"] == 4
    assert {i: s for i, s in elb_states(make, "qa-public").items() if i in old_ids} == {
        i: "InService" for i in old_ids}


def test_an_instance_dropping_out_during_bake_fails_the_state(cli, make, server):
    """A new instance stops (OutOfService) at bake's second poll: bake fails naming it and the
    load balancer, exit 1, lock kept for resume, the old ASG untouched."""
    build_env(make, "qa", active="a", active_count=4)
    stopped: list[str] = []

    def stop_one() -> None:
        stopped.append(instance_ids(make, "qa-b")[0])
        make("ec2").stop_instances(InstanceIds=stopped)

    with FaultProxy(server.endpoint) as proxy:
        # DescribeInstanceHealth #1 wait-elb, #2 bake poll 1, #3 bake poll 2
        at_call(proxy, "DescribeInstanceHealth", 3, stop_one)
        result = cli(*DEPLOY, "--bake-time", "300",
                     extra_env={**VIRTUAL, "AWS_ENDPOINT_URL": proxy.endpoint})
    assert result.returncode == 1, result.stderr
    assert result.transitions[-1] == ("bake", "failed", "fail")
    error = result.finished["error"]
    assert error.startswith("bake: 1 of 4 new instance(s) dropped out after 30 s of 300 s")
    assert error.endswith(f"; qa-public: 1 OutOfService (Instance: {stopped[0]})")
    assert capacities(make, ASGS)["qa-a"]["desired"] == 4
