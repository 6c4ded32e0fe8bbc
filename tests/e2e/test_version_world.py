"""Lifecycle hooks end to end: `abfsm deploy` against the emulator's world model over HTTP.

The world is frozen except for `per_call` seconds per AWS call, so instances boot after a few
polls; the lifecycle hooks hold them until this test calls CompleteLifecycleAction while the
CLI (in the background, real clock, short polls) is waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from abfsm.log_schema import validate
from tests.e2e.conftest import cli_env
from tests.support import crash_cli
from tests.support.aws_env import build_env, instance_ids

POLL = ("--update-timeout", "0.2", "--health-check-timeout", "120")


@pytest.fixture
def world(server: Any) -> Iterator[Any]:
    """The world model on, moving 5 s per AWS call; off again afterwards."""
    server.world(enabled=True)
    server.world(advance=3600)  # what exists now booted long ago
    server.world(per_call=5)
    yield lambda **change: server.world(**change)
    server.world(enabled=False)
    crash_cli.reap()


def hook(make: Any, asg: str, transition: str, *, default: str = "ABANDON") -> None:
    make("autoscaling").put_lifecycle_hook(
        LifecycleHookName="h", AutoScalingGroupName=asg, HeartbeatTimeout=7200,
        LifecycleTransition=f"autoscaling:EC2_INSTANCE_{transition}", DefaultResult=default)


def complete(make: Any, asg: str, iid: str, result: str = "CONTINUE") -> None:
    make("autoscaling").complete_lifecycle_action(
        LifecycleHookName="h", AutoScalingGroupName=asg, InstanceId=iid,
        LifecycleActionResult=result)


def held(state: str, lifecycle: str, count: int = 1) -> Any:
    """A poll of `state` showing at least `count` instances in `lifecycle`."""
    return lambda e: (e.get("event") == "wait.progress" and e.get("state") == state and
                      sum(1 for n in e["not_ready"] if n["state"].startswith(lifecycle)) >= count)


def test_a_launch_hook_holds_instances_until_completed(world, make, server, tmp_path):
    """Both new instances in Pending:Wait: the wait shows them so (never ready) until
    CompleteLifecycleAction CONTINUE, then the deployment completes."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False)
    hook(make, "qa-b", "LAUNCHING")
    run = crash_cli.start(cli_env(server), tmp_path, "deploy", "--environment", "qa",
                          "--instance-count", "2", *POLL)
    poll = run.wait_for(held("wait-instances", "Pending:Wait", 2))
    assert poll["ready"] == 0
    assert all("launch lifecycle hook" in n["reason"] for n in poll["not_ready"])
    for iid in instance_ids(make, "qa-b"):
        complete(make, "qa-b", iid)
    assert run.finish() == 0, run.stderr
    before = [p for p in run.named("wait.progress") if p["state"] == "wait-instances"]
    assert all(p["ready"] == 0 for p in before[:before.index(poll) + 1])


def test_an_abandoned_instance_is_replaced_and_the_wait_counts_the_replacement(world, make,
                                                                               server, tmp_path):
    """One held instance completed with ABANDON: the run names it as lost, waits for the
    replacement (held by the hook too), and succeeds only with 2 InService."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False)
    hook(make, "qa-b", "LAUNCHING")
    run = crash_cli.start(cli_env(server), tmp_path, "deploy", "--environment", "qa",
                          "--instance-count", "2", *POLL)
    run.wait_for(held("wait-instances", "Pending:Wait", 2))
    keep, drop = instance_ids(make, "qa-b")
    complete(make, "qa-b", keep)
    complete(make, "qa-b", drop, "ABANDON")
    lost = run.wait_for(lambda e: e.get("event") == "wait.instance_lost")
    assert lost["instance_id"] == drop
    run.wait_for(held("wait-instances", "Pending:Wait", 1))
    [replacement] = [i for i in instance_ids(make, "qa-b") if i not in (keep, drop)]
    complete(make, "qa-b", replacement)
    assert run.finish() == 0, run.stderr
    final = [p for p in run.named("wait.progress") if p["state"] == "wait-instances"][-1]
    assert (final["ready"], final["total"]) == (2, 2)
    assert sorted(instance_ids(make, "qa-b")) == sorted([keep, replacement])
    assert [p for e in run.events for p in validate(e)] == []  # wait.instance_lost included


def test_a_drain_waits_for_terminating_wait(world, make, server, tmp_path):
    """--wait-for-scale-down with a termination hook on qa-a: the drain shows its instances
    Terminating:Wait and ends only after CompleteLifecycleAction lets them go."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False)
    hook(make, "qa-a", "TERMINATING", default="CONTINUE")
    old = instance_ids(make, "qa-a")
    run = crash_cli.start(cli_env(server), tmp_path, "deploy", "--environment", "qa",
                          "--instance-count", "1", "--wait-for-scale-down", *POLL)
    poll = run.wait_for(held("drain", "Terminating:Wait", 2))
    assert {n["id"] for n in poll["not_ready"]} == set(old)
    assert all(n.get("reason") == "held by a termination lifecycle hook" for n in poll["not_ready"])
    for iid in old:
        complete(make, "qa-a", iid)
    assert run.finish() == 0, run.stderr
    assert instance_ids(make, "qa-a") == []
    assert [e["asg"] for e in run.named("drain.finished")] == ["qa-a"]


def test_a_timeout_while_held_in_pending_wait_names_them(world, make, cli):
    """The hook is never completed: wait-instances times out (virtual time) and the failure
    names each instance as Pending:Wait, held by a launch lifecycle hook."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False)
    hook(make, "qa-b", "LAUNCHING")
    result = cli("deploy", "--environment", "qa", "--instance-count", "2",
                 "--health-check-timeout", "300", extra_env={"ABFSM_VIRTUAL_CLOCK": "1"})
    assert result.returncode == 1
    [failed] = result.named("state.failed")
    assert failed["state"] == "wait-instances"
    assert "2 Pending:Wait/Healthy (held by a launch lifecycle hook" in failed["error"]
    for iid in instance_ids(make, "qa-b"):
        assert iid in failed["error"]


def warm_pool(make: Any, asg: str) -> dict[str, str]:
    resp = make("autoscaling").describe_warm_pool(AutoScalingGroupName=asg)
    return {i["InstanceId"]: i["LifecycleState"] for i in resp.get("Instances", [])}


def test_warm_pool_instances_are_counted_once_in_service(world, make, server, tmp_path):
    """qa-b has a prepared warm pool: the scale-out takes its instances (warm start), the wait
    counts each of them once InService and Healthy, never the pool's (refilled) instances,
    and ends with exactly the count."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False)
    make("autoscaling").put_warm_pool(AutoScalingGroupName="qa-b", MaxGroupPreparedCapacity=4)
    world(advance=3600)  # the pool has booted and stopped
    pooled = warm_pool(make, "qa-b")
    assert set(pooled.values()) == {"Warmed:Stopped"}
    run = crash_cli.start(cli_env(server), tmp_path, "deploy", "--environment", "qa",
                          "--instance-count", "2", *POLL)
    assert run.finish() == 0, run.stderr
    new = instance_ids(make, "qa-b")
    assert len(new) == 2 and set(new) <= set(pooled)  # taken from the pool
    polls = [p for p in run.named("wait.progress") if p["state"] == "wait-instances"]
    assert all(p["total"] == 2 and p["ready"] <= 2 for p in polls)
    assert (polls[-1]["ready"], polls[-1]["total"]) == (2, 2)
    assert not [n for p in polls for n in p["not_ready"] if n["state"].startswith("Warmed")]
    record = crash_cli.Records(make, "qa", state_dir=tmp_path / "state").archived()
    [final] = record.values()
    assert sorted(final["context"]["instance_ids"]) == sorted(new)
