"""Timeouts through the one waiting loop, with a FakeClock (no real sleeping), and
wait-instances against in-process moto: never passes with 0 instances, needs InService+Healthy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from abfsm import runner
from abfsm.actions.base import Run
from abfsm.actions.wait_instances import wait_instances
from abfsm.actions.waiting import Progress, wait_until
from abfsm.context import Plan, Settings
from abfsm.errors import WaitTimeout
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from tests.fakes import FakeClock
from tests.support.aws_env import build_env, instance_ids


def make_run(tmp_path: Path, clock: FakeClock, *, state: str = "wait-elb", aws: Any = None,
             plan: Plan | None = None, timeout: float = 600, interval: float = 30) -> Run:
    s = Settings(environment="qa", state_dir=str(tmp_path), health_check_timeout=timeout,
                 update_timeout=interval)
    spec = runner.load(s)
    run = Run(settings=s, plan=plan or Plan(), aws=aws, clock=clock,
              lock=Lock(LocalStore(tmp_path, "qa"), clock),
              record=new_record("qa", 1, spec.initial, s.to_dict(), clock), spec=spec)
    run.state = state
    return run


class Poller:
    """A check that is never ready (or ready at poll `ready_at`), recording when it ran."""

    def __init__(self, clock: FakeClock, ready_at: int | None = None) -> None:
        self.clock, self.ready_at, self.at = clock, ready_at, []  # type: ignore[var-annotated]

    def __call__(self) -> Progress:
        self.at.append(self.clock.monotonic())
        n = len(self.at)
        done = self.ready_at is not None and n >= self.ready_at
        return Progress(ready=3, total=4, done=done, summary="3/4 InService in qa-public",
                        not_ready=[{"id": f"i-poll{n}", "state": "OutOfService",
                                    "lb": "qa-public", "reason": "Instance has failed"}],
                        what="healthy in every load balancer")


def test_600s_at_30s_polls_21_times_then_times_out(tmp_path, clock):
    """A wait that never gets ready polls at 0, 30, ..., 600 s (21 polls, 20 sleeps), then fails."""
    check = Poller(clock)
    run = make_run(tmp_path, clock)
    with pytest.raises(WaitTimeout):
        wait_until(run, check)
    start = check.at[0]
    assert [t - start for t in check.at] == [30.0 * i for i in range(21)]
    assert clock.sleeps == [30.0] * 20


def test_timeout_takes_no_real_time(tmp_path, clock):
    """The 600 s wait finishes in well under a second of real time."""
    run = make_run(tmp_path, clock)
    began = time.monotonic()
    with pytest.raises(WaitTimeout):
        wait_until(run, Poller(clock))
    assert time.monotonic() - began < 1.0
    assert sum(clock.sleeps) == 600.0


def test_timeout_message_names_state_what_and_last_seen(tmp_path, clock):
    """The WaitTimeout names the state, what it waited for, the timeout and the last poll's view."""
    run = make_run(tmp_path, clock)
    with pytest.raises(WaitTimeout) as err:
        wait_until(run, Poller(clock))
    text = str(err.value)
    assert text.startswith("wait-elb: 3/4 InService in qa-public after 600 s")
    assert "qa-public: 1 OutOfService (Instance has failed: i-poll21)" in text
    assert "i-poll20" not in text  # what it saw *last*
    assert err.value.exit_code == 1


def test_first_check_is_immediate(tmp_path, clock):
    """Poll 1 happens before any sleep."""
    slept_before_first: list[int] = []
    check = Poller(clock)

    def first() -> Progress:
        if not check.at:
            slept_before_first.append(len(clock.sleeps))
        return check()

    run = make_run(tmp_path, clock)
    with pytest.raises(WaitTimeout):
        wait_until(run, first)
    assert slept_before_first == [0]


def test_ready_on_first_poll_never_sleeps(tmp_path, clock):
    """A wait that is ready at once returns after one poll and zero sleeps."""
    check = Poller(clock, ready_at=1)
    progress = wait_until(make_run(tmp_path, clock), check)
    assert progress.done and len(check.at) == 1 and clock.sleeps == []


def test_ready_on_poll_3_sleeps_twice(tmp_path, clock):
    """Ready on the third poll -> exactly two sleeps of the poll interval."""
    check = Poller(clock, ready_at=3)
    wait_until(make_run(tmp_path, clock), check)
    assert len(check.at) == 3 and clock.sleeps == [30.0, 30.0]


def test_last_sleep_is_clipped_to_the_remaining_time(tmp_path, clock):
    """100 s at 30 s: sleeps 30, 30, 30, 10 and polls at 0, 30, 60, 90, 100."""
    check = Poller(clock)
    run = make_run(tmp_path, clock, timeout=100, interval=30)
    with pytest.raises(WaitTimeout, match="after 100 s"):
        wait_until(run, check)
    assert clock.sleeps == [30.0, 30.0, 30.0, 10.0]
    assert [t - check.at[0] for t in check.at] == [0.0, 30.0, 60.0, 90.0, 100.0]


def test_interval_longer_than_timeout_polls_twice(tmp_path, clock):
    """A 10 s timeout at a 30 s interval polls at 0 and 10 s, not 30 s past the timeout."""
    check = Poller(clock)
    with pytest.raises(WaitTimeout):
        wait_until(make_run(tmp_path, clock, timeout=10, interval=30), check)
    assert clock.sleeps == [10.0]


def test_wait_refreshes_the_heartbeat_after_each_sleep(tmp_path, clock):
    """While waiting, the lock's record is rewritten with a fresh heartbeat after each sleep."""
    run = make_run(tmp_path, clock, timeout=60)
    run.lock.acquire(run.record)
    heartbeats: list[str] = []
    check = Poller(clock)

    def watch() -> Progress:
        from abfsm.record import RunRecord
        heartbeats.append(RunRecord.from_json((tmp_path / "qa.lock").read_bytes()).heartbeat)  # type: ignore[union-attr]
        return check()

    with pytest.raises(WaitTimeout):
        wait_until(run, watch)
    assert heartbeats == ["2026-01-01T12:00:00Z", "2026-01-01T12:00:30Z", "2026-01-01T12:01:00Z"]


# --- wait-instances against in-process moto --------------------------------------------------

def test_wait_instances_never_passes_with_zero_instances(tmp_path, clock, aws, services):
    """A step of desired 0 (nothing to wait for) is not 'ready': it times out instead of passing."""
    build_env(aws, "qa", active="a", active_count=2)
    plan = Plan(mode="ab", active="qa-a", target="qa-b", target_count=0, steps=[0])
    run = make_run(tmp_path, clock, state="wait-instances", aws=services, plan=plan, timeout=60)
    with pytest.raises(WaitTimeout, match=r"wait-instances: 0/0 InService and Healthy in qa-b after 60 s"):
        wait_instances(run)
    assert clock.sleeps == [30.0, 30.0]


def test_wait_instances_passes_when_all_are_inservice_and_healthy(tmp_path, clock, aws, services):
    """Control: 4 InService+Healthy instances pass on the first poll with their ids recorded."""
    build_env(aws, "qa", active="a", active_count=4)
    plan = Plan(mode="ab", target="qa-a", target_count=4, steps=[4])
    run = make_run(tmp_path, clock, state="wait-instances", aws=services, plan=plan)
    assert wait_instances(run) == "instances_ready"
    assert run.plan.instance_ids == instance_ids(aws, "qa-a") and clock.sleeps == []


def test_wait_instances_requires_healthy_not_just_inservice(tmp_path, clock, aws, services):
    """One InService but Unhealthy instance keeps the wait going until it times out, named."""
    build_env(aws, "qa", active="a", active_count=4)
    sick = instance_ids(aws, "qa-a")[0]
    aws("autoscaling").set_instance_health(InstanceId=sick, HealthStatus="Unhealthy")
    plan = Plan(mode="ab", target="qa-a", target_count=4, steps=[4])
    run = make_run(tmp_path, clock, state="wait-instances", aws=services, plan=plan, timeout=90)
    with pytest.raises(WaitTimeout) as err:
        wait_instances(run)
    assert str(err.value).startswith("wait-instances: 3/4 InService and Healthy in qa-a after 90 s")
    assert f"1 InService/Unhealthy ({sick})" in str(err.value)
    assert len(clock.sleeps) == 3


def test_wait_instances_requires_inservice_not_just_healthy(tmp_path, clock, aws, services):
    """A Healthy instance in Standby is not ready: the wait times out naming its lifecycle."""
    build_env(aws, "qa", active="a", active_count=2)
    parked = instance_ids(aws, "qa-a")[0]
    aws("autoscaling").enter_standby(InstanceIds=[parked], AutoScalingGroupName="qa-a",
                                     ShouldDecrementDesiredCapacity=True)
    plan = Plan(mode="ab", target="qa-a", target_count=2, steps=[2])
    run = make_run(tmp_path, clock, state="wait-instances", aws=services, plan=plan, timeout=30)
    with pytest.raises(WaitTimeout) as err:
        wait_instances(run)
    assert f"1 Standby/Healthy ({parked})" in str(err.value)


def test_wait_instances_loops_back_to_scale_while_steps_remain(tmp_path, clock, aws, services):
    """A ready intermediate step returns next_step and advances the step index."""
    build_env(aws, "qa", active="a", active_count=2)
    plan = Plan(mode="ab", target="qa-a", target_count=4, steps=[2, 4])
    run = make_run(tmp_path, clock, state="wait-instances", aws=services, plan=plan)
    assert wait_instances(run) == "next_step"
    assert run.plan.step_index == 1
