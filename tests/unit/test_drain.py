"""drain and its --wait-for-scale-down wait, against a fake AWS adapter and a FakeClock.

Faked, and why: moto never deregisters a target group's targets when their ASG scales in;
it keeps reporting the terminated instances as `healthy` forever (see DESIGN.md, moto
quirks). Real AWS moves each old target to `draining` (Target.DeregistrationInProgress) and,
once the deregistration delay has passed, drops it from DescribeTargetHealth altogether.
So these tests replace the adapters (`Services`) with fakes that answer, poll by poll, what
AWS answers: healthy -> draining -> absent. The AWS calls themselves are covered against
moto in tests/aws/test_target_groups.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm import runner
from abfsm.actions.base import Run
from abfsm.actions.drain import drain
from abfsm.actions.health import gone
from abfsm.aws.autoscaling import Group, Instance
from abfsm.aws.elb import Member
from abfsm.context import Plan, Settings
from abfsm.errors import WaitTimeout
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from tests.fakes import FakeClock

TG0 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/qa-tg0/0000000000000000"
TG1 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/qa-tg1/1111111111111111"
OLD = ["i-old1", "i-old2"]
NEW = ["i-new1", "i-new2"]


def healthy(*ids: str) -> list[Member]:
    return [Member(i, "healthy") for i in ids]


def draining(*ids: str) -> list[Member]:
    return [Member(i, "draining", "Target.DeregistrationInProgress") for i in ids]


class FakeAutoScaling:
    """qa-a holds the old instances; after it is zeroed they stay `Terminating` for
    `terminating_polls` describes, then are gone (on AWS the group keeps them until the
    deregistration delay has passed)."""

    def __init__(self, terminating_polls: int = 0) -> None:
        self.instances = {"qa-a": [Instance(i, "InService", "Healthy") for i in OLD],
                          "qa-b": [Instance(i, "InService", "Healthy") for i in NEW]}
        self.terminating_polls = terminating_polls
        self.describes = 0
        self.updates: list[dict[str, Any]] = []

    def describe(self, names: list[str]) -> dict[str, Group]:
        self.describes += 1
        out = {}
        for name in names:
            if any(u["name"] == name and u["desired"] == 0 for u in self.updates):
                if self.terminating_polls > 0:
                    self.terminating_polls -= 1
                    self.instances[name] = [Instance(i.id, "Terminating", "Healthy")
                                            for i in self.instances[name]]
                else:
                    self.instances[name] = []
            insts = tuple(self.instances[name])
            out[name] = Group(name, 0, 10, len(insts), insts, (), (TG0, TG1))
        return out

    def update_capacity(self, name: str, *, desired: int, min_size: int | None = None,
                        max_size: int | None = None) -> None:
        self.updates.append({"name": name, "desired": desired, "min_size": min_size,
                             "max_size": max_size})


class FakeTargetGroups:
    """DescribeTargetHealth answers scripted per poll; the last answer repeats."""

    def __init__(self, scripts: dict[str, list[list[Member]]]) -> None:
        self.scripts = scripts
        self.calls: list[str] = []

    def members(self, arn: str) -> list[Member]:
        self.calls.append(arn)
        script = self.scripts[arn]
        return script[min(self.calls.count(arn), len(script)) - 1]

    def deregistration_delay(self, arn: str) -> int:
        return 300


class FakeServices:
    def __init__(self, autoscaling: FakeAutoScaling, elbv2: FakeTargetGroups) -> None:
        self.autoscaling = autoscaling
        self.elbv2 = elbv2

    @property
    def elb(self) -> Any:
        raise AssertionError("no classic ELB in these plans")


def make_run(tmp_path: Path, clock: FakeClock, aws: FakeServices, *, wait: bool = True,
             timeout: float = 600, interval: float = 30,
             target_groups: tuple[str, ...] = (TG0, TG1)) -> Run:
    settings = Settings(environment="qa", state_dir=str(tmp_path), wait_for_scale_down=wait,
                        health_check_timeout=timeout, update_timeout=interval)
    spec = runner.load(settings)
    plan = Plan(mode="ab", active="qa-a", target="qa-b", active_count=2, target_count=2,
                steps=[2], target_groups=list(target_groups), lb_source="discovered",
                instance_ids=list(NEW), deregistration_delays={t: 300 for t in target_groups})
    run = Run(settings=settings, plan=plan, aws=aws, clock=clock,  # type: ignore[arg-type]
              lock=Lock(LocalStore(tmp_path, "qa"), clock),
              record=new_record("qa", 1, spec.initial, settings.to_dict(), clock), spec=spec)
    run.state = "drain"
    return run


def progress(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "wait.progress"]


def test_drain_waits_healthy_then_draining_then_gone(tmp_path, clock):
    """Old targets healthy -> draining -> absent: drain polls 3 times, sleeps twice, then ends."""
    tgs = FakeTargetGroups({t: [healthy(*OLD, *NEW), draining(*OLD) + healthy(*NEW), healthy(*NEW)]
                            for t in (TG0, TG1)})
    run = make_run(tmp_path, clock, FakeServices(FakeAutoScaling(), tgs))
    with capture_logs() as logs:
        assert drain(run) == "drained"
    polls = progress(logs)
    assert [(p["ready"], p["total"]) for p in polls] == [(0, 2), (0, 2), (2, 2)]
    assert clock.sleeps == [30.0, 30.0]
    assert [e["event"] for e in logs][-1] == "drain.finished"


def test_draining_target_is_not_gone(tmp_path, clock):
    """A target left `draining` keeps the wait going; the last poll lists it as draining."""
    tgs = FakeTargetGroups({TG0: [draining("i-old1")], TG1: [[]]})
    run = make_run(tmp_path, clock, FakeServices(FakeAutoScaling(), tgs), timeout=90)
    with capture_logs() as logs, pytest.raises(WaitTimeout):
        drain(run)
    last = progress(logs)[-1]
    assert last["not_ready"] == [{"id": "i-old1", "lb": "targetgroup/qa-tg0", "state": "draining",
                                  "reason": "Target.DeregistrationInProgress"}]
    assert len(progress(logs)) == 4  # polls at 0, 30, 60, 90 s


def test_drain_timeout_message_names_group_instance_state_and_reason(tmp_path, clock):
    """Timing out names the state, the timeout and each still-registered target with its reason."""
    tgs = FakeTargetGroups({TG0: [draining(*OLD)], TG1: [healthy("i-old2")]})
    run = make_run(tmp_path, clock, FakeServices(FakeAutoScaling(), tgs), timeout=120)
    with pytest.raises(WaitTimeout) as err:
        drain(run)
    text = str(err.value)
    assert text.startswith("drain: 0 instance(s) left in qa-a; "
                           "2 still registered in targetgroup/qa-tg0; "
                           "1 still registered in targetgroup/qa-tg1 after 120 s")
    assert ("targetgroup/qa-tg0: 2 draining (Target.DeregistrationInProgress: i-old1, i-old2)"
            in text)
    assert "targetgroup/qa-tg1: 1 healthy (i-old2)" in text
    assert err.value.exit_code == 1


def test_drain_timeout_is_the_health_check_timeout(tmp_path, clock):
    """The wait gives up after --health-check-timeout (here 600 s at 30 s: 21 polls), instantly."""
    tgs = FakeTargetGroups({TG0: [draining("i-old1")], TG1: [[]]})
    run = make_run(tmp_path, clock, FakeServices(FakeAutoScaling(), tgs))
    with pytest.raises(WaitTimeout, match="after 600 s"):
        drain(run)
    assert clock.sleeps == [30.0] * 20


def test_only_old_instances_are_waited_for(tmp_path, clock):
    """The new ASG's healthy targets in the same group do not hold the drain open."""
    tgs = FakeTargetGroups({t: [healthy(*NEW)] for t in (TG0, TG1)})
    run = make_run(tmp_path, clock, FakeServices(FakeAutoScaling(), tgs))
    with capture_logs() as logs:
        assert drain(run) == "drained"
    assert len(progress(logs)) == 1 and clock.sleeps == []


def test_instances_left_in_the_group_keep_the_drain_waiting(tmp_path, clock):
    """Targets already gone, but the group still lists its instances Terminating: wait for it."""
    autoscaling = FakeAutoScaling(terminating_polls=2)
    tgs = FakeTargetGroups({t: [healthy(*NEW)] for t in (TG0, TG1)})
    run = make_run(tmp_path, clock, FakeServices(autoscaling, tgs))
    with capture_logs() as logs:
        assert drain(run) == "drained"
    polls = progress(logs)
    assert len(polls) == 3
    assert {"id": "i-old1", "state": "Terminating in qa-a"} in polls[0]["not_ready"]


def test_drain_polls_one_describe_and_one_health_call_per_target_group(tmp_path, clock):
    """Per poll: one DescribeAutoScalingGroups and one DescribeTargetHealth per target group."""
    autoscaling = FakeAutoScaling()
    tgs = FakeTargetGroups({t: [draining(*OLD), draining(*OLD), []] for t in (TG0, TG1)})
    run = make_run(tmp_path, clock, FakeServices(autoscaling, tgs))
    drain(run)
    assert autoscaling.describes == 1 + 3  # the old ids before zeroing, then 3 polls
    assert tgs.calls == [TG0, TG1] * 3


def test_drain_zeroes_min_size_and_desired_of_the_old_asg(tmp_path, clock):
    """The one mutating call: the old ASG's DesiredCapacity and MinSize to 0, nothing else."""
    autoscaling = FakeAutoScaling()
    run = make_run(tmp_path, clock, FakeServices(autoscaling, FakeTargetGroups({})), wait=False)
    drain(run)
    assert autoscaling.updates == [{"name": "qa-a", "desired": 0, "min_size": 0, "max_size": None}]


def test_drain_without_wait_for_scale_down_does_not_poll(tmp_path, clock):
    """Without --wait-for-scale-down: no describe, no target health call, no sleep."""
    autoscaling, tgs = FakeAutoScaling(), FakeTargetGroups({})
    run = make_run(tmp_path, clock, FakeServices(autoscaling, tgs), wait=False)
    with capture_logs() as logs:
        assert drain(run) == "drained"
    assert (autoscaling.describes, tgs.calls, clock.sleeps) == (0, [], [])
    assert not progress(logs)


def test_drain_log_says_the_old_instances_are_now_draining(tmp_path, clock):
    """drain.started: the old ASG, its instances (now draining), the load balancers, the delays."""
    tgs = FakeTargetGroups({t: [[]] for t in (TG0, TG1)})
    run = make_run(tmp_path, clock, FakeServices(FakeAutoScaling(), tgs))
    with capture_logs() as logs:
        drain(run)
    started = next(e for e in logs if e["event"] == "drain.started")
    assert started["asg"] == "qa-a" and started["status"] == "draining"
    assert started["instance_ids"] == OLD and started["instances"] == 2
    assert started["load_balancers"] == ["targetgroup/qa-tg0", "targetgroup/qa-tg1"]
    assert started["deregistration_delays"] == {TG0: 300, TG1: 300}


@pytest.mark.parametrize(("member", "is_gone"), [
    (None, True),
    (Member("i-1", "unused", "Target.NotRegistered"), True),
    (Member("i-1", "draining", "Target.DeregistrationInProgress"), False),
    (Member("i-1", "unused", "Target.InvalidState"), False),
    (Member("i-1", "healthy"), False),
    (Member("i-1", "InService"), False),
])
def test_gone_means_no_longer_registered(member, is_gone):
    """Gone = absent (or `unused`/Target.NotRegistered); draining, stopped or healthy are not."""
    assert gone(member) is is_gone
