"""Lifecycle hooks and warm pools in the waits, against AWS-shaped answers and a FakeClock.

Faked, and why: plain moto has no lifecycle states at all (every instance is InService at
once, hooks are stored and never applied, a warm pool holds no instances). The answers here
are what DescribeAutoScalingGroups reports on AWS, poll by poll: `Pending:Wait` while a launch
hook holds an instance, `Terminating` and a new instance id when the hook ABANDONs it,
`Warmed:*` for a warm pool's instances, `Terminating:Wait` while a termination hook holds one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm import runner
from abfsm.actions.base import Run
from abfsm.actions.drain import drain
from abfsm.actions.wait_instances import wait_instances
from abfsm.aws.autoscaling import Group, Instance
from abfsm.context import Plan, Settings
from abfsm.errors import WaitTimeout
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from tests.fakes import FakeClock


def inst(iid: str, lifecycle: str, health: str = "Healthy") -> Instance:
    return Instance(iid, lifecycle, health)


class ScriptedAutoScaling:
    """Each describe of an ASG answers its next scripted instance list; the last repeats."""

    def __init__(self, scripts: dict[str, list[list[Instance]]]) -> None:
        self.scripts = scripts
        self.polls: dict[str, int] = {}
        self.calls: list[tuple[str, Any]] = []

    def describe(self, names: list[str]) -> dict[str, Group]:
        out = {}
        for name in names:
            n = self.polls[name] = self.polls.get(name, 0) + 1
            script = self.scripts[name]
            insts = tuple(script[min(n, len(script)) - 1])
            out[name] = Group(name, 0, 10, len(insts), insts)
        return out

    def update_capacity(self, name: str, **kwargs: Any) -> None:
        self.calls.append(("update", name))

    def suspend_processes(self, name: str, processes: list[str]) -> None:
        self.calls.append(("suspend", name))

    def resume_processes(self, name: str, processes: list[str]) -> None:
        self.calls.append(("resume", name))


class FakeServices:
    def __init__(self, autoscaling: ScriptedAutoScaling) -> None:
        self.autoscaling = autoscaling


def make_run(tmp_path: Path, clock: FakeClock, autoscaling: ScriptedAutoScaling, *,
             state: str = "wait-instances", want: int = 2, timeout: float = 600,
             wait: bool = True) -> Run:
    settings = Settings(environment="qa", state_dir=str(tmp_path), health_check_timeout=timeout,
                        update_timeout=30, wait_for_scale_down=wait, no_elb_check=True)
    spec = runner.load(settings)
    plan = Plan(mode="ab", active="qa-a", target="qa-b", active_count=2, target_count=want,
                steps=[want], lb_source="skipped")
    run = Run(settings=settings, plan=plan, aws=FakeServices(autoscaling),  # type: ignore[arg-type]
              clock=clock, lock=Lock(LocalStore(tmp_path, "qa"), clock),
              record=new_record("qa", 1, spec.initial, settings.to_dict(), clock), spec=spec)
    run.state = state
    return run


def polls(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "wait.progress"]


def test_pending_wait_is_shown_as_such_and_never_counts_as_ready(tmp_path, clock):
    """Instances held by a launch hook: each poll shows Pending:Wait (with the hook named) and
    counts 0 ready; once CompleteLifecycleAction lets them go InService the wait passes."""
    held = [inst("i-1", "Pending:Wait"), inst("i-2", "Pending:Proceed")]
    aws = ScriptedAutoScaling({"qa-b": [held, held, [inst("i-1", "InService"),
                                                     inst("i-2", "InService")]]})
    run = make_run(tmp_path, clock, aws)
    with capture_logs() as logs:
        assert wait_instances(run) == "instances_ready"
    seen = polls(logs)
    assert [p["ready"] for p in seen] == [0, 0, 2]
    assert seen[0]["not_ready"][0] == {
        "id": "i-1", "state": "Pending:Wait/Healthy",
        "reason": "held by a launch lifecycle hook until CompleteLifecycleAction or its "
                  "heartbeat timeout"}
    assert seen[0]["not_ready"][1]["state"] == "Pending:Proceed/Healthy"
    assert run.plan.instance_ids == ["i-1", "i-2"]


def test_a_timeout_while_instances_are_pending_names_them_as_pending(tmp_path, clock):
    """Still in Pending:Wait at the timeout: the failure names each instance as Pending:Wait
    and says a launch lifecycle hook holds it."""
    aws = ScriptedAutoScaling({"qa-b": [[inst("i-1", "Pending:Wait"), inst("i-2", "Pending")]]})
    run = make_run(tmp_path, clock, aws, timeout=60)
    with pytest.raises(WaitTimeout) as err:
        wait_instances(run)
    text = str(err.value)
    assert text.startswith("wait-instances: 0/2 InService and Healthy in qa-b after 60 s")
    assert ("1 Pending:Wait/Healthy (held by a launch lifecycle hook until "
            "CompleteLifecycleAction or its heartbeat timeout: i-1)") in text
    assert "1 Pending/Healthy (i-2)" in text


def test_an_abandoned_instance_is_named_and_its_replacement_waited_for(tmp_path, clock):
    """i-1's hook times out with ABANDON (Terminating, then gone) while i-2 is InService: the
    wait never passes with 1 of 2, logs i-1 as lost, and passes once the replacement i-3 is."""
    aws = ScriptedAutoScaling({"qa-b": [
        [inst("i-1", "Pending:Wait"), inst("i-2", "InService")],
        [inst("i-1", "Terminating"), inst("i-2", "InService")],
        [inst("i-2", "InService"), inst("i-3", "Pending")],
        [inst("i-2", "InService"), inst("i-3", "InService")]]})
    run = make_run(tmp_path, clock, aws)
    with capture_logs() as logs:
        assert wait_instances(run) == "instances_ready"
    seen = polls(logs)
    assert [(p["ready"], p["total"]) for p in seen] == [(1, 2), (1, 2), (1, 2), (2, 2)]
    lost = [e for e in logs if e["event"] == "wait.instance_lost"]
    assert [(e["instance_id"], e["last_state"], e["state"]) for e in lost] == [
        ("i-1", "Pending:Wait/Healthy", "Terminating")]
    assert {"id": "1 more", "state": "not launched yet"} in seen[1]["not_ready"]
    assert any(r["id"] == "i-1" and r["state"] == "replaced" for r in seen[2]["not_ready"])
    assert run.plan.instance_ids == ["i-2", "i-3"]


def test_an_abandoned_instance_without_replacement_times_out_naming_it(tmp_path, clock):
    """The replacement never comes: the timeout says 1/2 and names the replaced instance."""
    aws = ScriptedAutoScaling({"qa-b": [
        [inst("i-1", "Pending:Wait"), inst("i-2", "InService")],
        [inst("i-2", "InService")]]})
    run = make_run(tmp_path, clock, aws, timeout=60)
    with pytest.raises(WaitTimeout) as err:
        wait_instances(run)
    assert "1/2 InService and Healthy in qa-b (1 replaced: i-1)" in str(err.value)
    assert ("1 replaced (Pending:Wait/Healthy, then gone before it was ready; waiting for its "
            "replacement: i-1)") in str(err.value)


def test_warm_pool_instances_count_only_once_in_service(tmp_path, clock):
    """A warm pool's Warmed:Running / Warmed:Stopped instances do not count (nor as launched);
    the one leaving the pool counts once InService and Healthy, under its own id, once."""
    aws = ScriptedAutoScaling({"qa-b": [
        [inst("i-1", "Warmed:Running"), inst("i-w", "Warmed:Stopped"), inst("i-2", "InService")],
        [inst("i-1", "Pending"), inst("i-w", "Warmed:Stopped"), inst("i-2", "InService")],
        [inst("i-1", "InService", "Unhealthy"), inst("i-w", "Warmed:Stopped"),
         inst("i-2", "InService")],
        [inst("i-1", "InService"), inst("i-w", "Warmed:Stopped"), inst("i-2", "InService")]]})
    run = make_run(tmp_path, clock, aws)
    with capture_logs() as logs:
        assert wait_instances(run) == "instances_ready"
    seen = polls(logs)
    assert [(p["ready"], p["total"]) for p in seen] == [(1, 2), (1, 2), (1, 2), (2, 2)]
    assert {"id": "1 more", "state": "not launched yet"} in seen[0]["not_ready"]
    assert all(r["id"] != "i-w" for p in seen for r in p["not_ready"])
    assert run.plan.instance_ids == ["i-1", "i-2"]


def test_drain_waits_for_terminating_wait_within_the_timeout(tmp_path, clock):
    """--wait-for-scale-down: old instances held in Terminating:Wait by a termination hook
    are waited for (named, with the hook) until they are gone."""
    old = [inst("i-o1", "InService"), inst("i-o2", "InService")]
    hooked = [inst("i-o1", "Terminating:Wait"), inst("i-o2", "Terminating:Proceed")]
    aws = ScriptedAutoScaling({"qa-a": [old, hooked, hooked, []]})
    run = make_run(tmp_path, clock, aws, state="drain")
    with capture_logs() as logs:
        assert drain(run) == "drained"
    seen = polls(logs)
    assert [(p["ready"], p["total"]) for p in seen] == [(0, 2), (0, 2), (2, 2)]
    assert seen[0]["not_ready"][0] == {"id": "i-o1", "state": "Terminating:Wait in qa-a",
                                       "reason": "held by a termination lifecycle hook"}


def test_drain_times_out_on_a_terminating_wait_that_never_ends(tmp_path, clock):
    """A termination hook that holds past the state's timeout fails the drain naming it."""
    aws = ScriptedAutoScaling({"qa-a": [[inst("i-o1", "InService")],
                                        [inst("i-o1", "Terminating:Wait")]]})
    run = make_run(tmp_path, clock, aws, state="drain", timeout=90)
    with pytest.raises(WaitTimeout) as err:
        drain(run)
    assert "1 Terminating:Wait in qa-a (held by a termination lifecycle hook: i-o1)" in str(err.value)
    assert clock.sleeps == [30.0, 30.0, 30.0]


def test_drain_does_not_wait_for_a_warm_pool(tmp_path, clock):
    """The old ASG's warm pool instances stay in the pool: the drain is done once the group's
    own instances are gone."""
    aws = ScriptedAutoScaling({"qa-a": [[inst("i-o1", "InService")],
                                        [inst("i-w", "Warmed:Stopped")]]})
    run = make_run(tmp_path, clock, aws, state="drain")
    with capture_logs() as logs:
        assert drain(run) == "drained"
    assert [(p["ready"], p["total"]) for p in polls(logs)] == [(1, 1)]


def test_a_terminate_resumed_on_the_drained_asg_is_suspended_again_once_it_is_empty(tmp_path,
                                                                                  clock):
    """--resume-processes resumed Terminate on qa-a: drain (even without
    --wait-for-scale-down) suspends it again only after qa-a has emptied."""
    aws = ScriptedAutoScaling({"qa-a": [[inst("i-o1", "Terminating")],
                                        [inst("i-o1", "Terminating")], []]})
    run = make_run(tmp_path, clock, aws, state="drain", wait=False)
    run.lock.acquire(run.record)
    run.plan.resume_processes = {"qa-a": ["Terminate"]}
    assert drain(run) == "drained"
    assert aws.calls == [("resume", "qa-a"), ("update", "qa-a"), ("suspend", "qa-a")]
    assert aws.polls["qa-a"] == 3  # the suspend came after the poll that saw it empty
    assert run.plan.resumed == {}
