"""wait.progress events: one per poll, ready counts rising as instances become healthy; a
wait that times out names the instances not ready, grouped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm import runner
from abfsm.actions.base import Run
from abfsm.actions.wait_elb import wait_elb
from abfsm.actions.wait_instances import wait_instances
from abfsm.aws.elb import Member
from abfsm.context import Plan, Settings
from abfsm.errors import WaitTimeout
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from tests.fakes import FakeClock
from tests.support.aws_env import build_env, instance_ids

KEYS = {"state", "ready", "total", "not_ready", "elapsed_s", "remaining_s"}


def make_run(tmp_path: Path, clock: FakeClock, state: str, aws: Any, plan: Plan) -> Run:
    s = Settings(environment="qa", state_dir=str(tmp_path), health_check_timeout=600,
                 update_timeout=30)
    spec = runner.load(s)
    run = Run(settings=s, plan=plan, aws=aws, clock=clock,
              lock=Lock(LocalStore(tmp_path, "qa"), clock),
              record=new_record("qa", 1, spec.initial, s.to_dict(), clock), spec=spec)
    run.state = state
    return run


def unhealthy_then_one_healthy_per_sleep(aws: Any, clock: Any, count: int) -> list[str]:
    """qa-a with `count` instances, all Unhealthy; after each sleep one more turns Healthy."""
    build_env(aws, "qa", active="a", active_count=count)
    ids = instance_ids(aws, "qa-a")
    asg = aws("autoscaling")
    for iid in ids:
        asg.set_instance_health(InstanceId=iid, HealthStatus="Unhealthy")
    pending = list(ids)
    clock.on_sleep(lambda: asg.set_instance_health(InstanceId=pending.pop(0), HealthStatus="Healthy"))
    return ids


def progress(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "wait.progress"]


def test_wait_instances_emits_n_plus_1_progress_events_with_rising_ready(tmp_path, clock, aws, services):
    """4 Unhealthy instances, one turning Healthy per sleep: 5 events, ready 0,1,2,3,4."""
    unhealthy_then_one_healthy_per_sleep(aws, clock, 4)
    run = make_run(tmp_path, clock, "wait-instances", services,
                   Plan(mode="ab", target="qa-a", target_count=4, steps=[4]))
    with capture_logs() as events:
        assert wait_instances(run) == "instances_ready"
    polls = progress(events)
    assert len(polls) == 4 + 1
    assert [p["ready"] for p in polls] == [0, 1, 2, 3, 4]
    assert all(KEYS <= set(p) and p["state"] == "wait-instances" and p["total"] == 4 for p in polls)


def test_progress_lists_the_not_ready_instances_with_their_state(tmp_path, clock, aws, services):
    """not_ready names exactly the instances still unhealthy, each with id and state."""
    build_env(aws, "qa", active="a", active_count=3)
    ids = instance_ids(aws, "qa-a")
    asg = aws("autoscaling")
    asg.set_instance_health(InstanceId=ids[1], HealthStatus="Unhealthy")
    clock.on_sleep(lambda: asg.set_instance_health(InstanceId=ids[1], HealthStatus="Healthy"))
    run = make_run(tmp_path, clock, "wait-instances", services,
                   Plan(mode="ab", target="qa-a", target_count=3, steps=[3]))
    with capture_logs() as events:
        wait_instances(run)
    first, last = progress(events)
    assert first["not_ready"] == [{"id": ids[1], "state": "InService/Unhealthy"}]
    assert last["not_ready"] == []


def test_progress_times_count_up_and_down(tmp_path, clock, aws, services):
    """elapsed_s rises by the poll interval and remaining_s falls by it."""
    unhealthy_then_one_healthy_per_sleep(aws, clock, 2)
    run = make_run(tmp_path, clock, "wait-instances", services,
                   Plan(mode="ab", target="qa-a", target_count=2, steps=[2]))
    with capture_logs() as events:
        wait_instances(run)
    polls = progress(events)
    assert [(p["elapsed_s"], p["remaining_s"]) for p in polls] == [
        (0.0, 600.0), (30.0, 570.0), (60.0, 540.0)]
    assert [p["poll"] for p in polls] == [1, 2, 3]


def test_progress_counts_an_instance_not_launched_yet(tmp_path, clock, aws, services):
    """Fewer instances than the step wants: the shortfall is listed as not launched yet."""
    build_env(aws, "qa", active="a", active_count=2)
    asg = aws("autoscaling")
    clock.on_sleep(lambda: asg.set_desired_capacity(AutoScalingGroupName="qa-a", DesiredCapacity=3))
    run = make_run(tmp_path, clock, "wait-instances", services,
                   Plan(mode="ab", target="qa-a", target_count=3, steps=[3]))
    with capture_logs() as events:
        wait_instances(run)
    first, second = progress(events)
    assert (first["ready"], first["total"]) == (2, 3)
    assert first["not_ready"] == [{"id": "1 more", "state": "not launched yet"}]
    assert (second["ready"], second["not_ready"]) == (3, [])


class FakeLbServices:
    """Fake adapter: a classic ELB whose instances turn InService one per poll.

    Faked (not moto) so the ELB's view can change between polls on a schedule.
    """

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.healthy = 0
        self.elb = self

    def members(self, name: str) -> list[Member]:
        return [Member(iid, "InService") if n < self.healthy
                else Member(iid, "OutOfService", "Instance has failed at least the UnhealthyThreshold")
                for n, iid in enumerate(self.ids)]


def test_wait_elb_emits_n_plus_1_progress_events(tmp_path, clock):
    """3 instances turning InService one per sleep: 4 events, ready 0..3, reasons in not_ready."""
    ids = ["i-1", "i-2", "i-3"]
    fake = FakeLbServices(ids)

    def more() -> None:
        fake.healthy += 1

    clock.on_sleep(more)
    run = make_run(tmp_path, clock, "wait-elb", fake,
                   Plan(mode="ab", target="qa-b", load_balancers=["qa-public"], instance_ids=ids))
    with capture_logs() as events:
        assert wait_elb(run) == "healthy"
    polls = progress(events)
    assert [p["ready"] for p in polls] == [0, 1, 2, 3]
    assert all(KEYS <= set(p) and p["state"] == "wait-elb" and p["total"] == 3 for p in polls)
    assert polls[1]["not_ready"] == [
        {"id": iid, "lb": "qa-public", "state": "OutOfService",
         "reason": "Instance has failed at least the UnhealthyThreshold"} for iid in ("i-2", "i-3")]


def test_wait_elb_timeout_groups_the_instances_by_reason(tmp_path, clock):
    """Eight instances never InService: the failure names the ELB per group, each id once."""
    ids = [f"i-{n}" for n in range(1, 9)]
    run = make_run(tmp_path, clock, "wait-elb", FakeLbServices(ids),
                   Plan(mode="ab", target="qa-b", load_balancers=["qa-public"], instance_ids=ids))
    with pytest.raises(WaitTimeout) as failed:
        wait_elb(run)
    assert str(failed.value) == (
        "wait-elb: 0/8 InService in qa-public after 600 s; qa-public: 8 OutOfService "
        "(Instance has failed at least the UnhealthyThreshold: " + ", ".join(ids) + ")")
