"""The deploy flags that change inspect, scale and drain, run through both engines from one
parametrised set: `abfsm deploy` (the runner) and an execution of the compiled machine
(moto's ASL interpreter, in process). Each test compares the final ASGs (capacities,
suspended processes), the lock, the archived record and the exit code.

moto does not enforce suspended processes (a suspended Launch still launches), so the
ResumeProcesses / SuspendProcesses calls each engine makes are recorded at moto's backend,
where both engines' calls arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from abfsm.record import parse
from tests.support.aws_env import build_env, capacities
from tests.support.sfn_moto import ASGS, BUCKET, ENGINES, SCALED, archived_runs, lock_body, settings_for

Calls = list[tuple[str, str, list[str]]]


@pytest.fixture
def process_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """(resume|suspend, ASG, processes) of every ResumeProcesses / SuspendProcesses call."""
    from moto.autoscaling.models import AutoScalingBackend

    calls: Calls = []
    for verb in ("resume", "suspend"):
        real = getattr(AutoScalingBackend, f"{verb}_processes")

        def record(self: Any, group_name: str, scaling_processes: list[str], *,
                   _verb: str = verb, _real: Callable[..., None] = real) -> None:
            calls.append((_verb, group_name, list(scaling_processes)))
            _real(self, group_name, scaling_processes)

        monkeypatch.setattr(AutoScalingBackend, f"{verb}_processes", record)
    yield calls


def _suspend(make: Callable[[str], Any], asg: str, *processes: str) -> None:
    make("autoscaling").suspend_processes(AutoScalingGroupName=asg, ScalingProcesses=list(processes))


def _suspended(make: Callable[[str], Any], names: list[str]) -> dict[str, list[str]]:
    groups = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=names)["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: sorted(p["ProcessName"] for p in g["SuspendedProcesses"])
            for g in groups}


def _archived_status(make: Callable[[str], Any]) -> str | None:
    [key] = archived_runs(make)
    saved = parse(make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert saved is not None and saved.environment == "qa"
    return saved.status


# --- suspended processes ------------------------------------------------------------------

@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("asg, process", [("qa-b", "Launch"), ("qa-a", "Terminate")],
                         ids=["launch-on-target", "terminate-on-active"])
def test_a_suspended_process_that_would_stall_the_run_is_refused(sfn_make, process_calls,
                                                                 engine_name, asg, process):
    """Launch suspended on the target or Terminate on the ASG to drain: exit 3, nothing
    scaled, the process still suspended, no process call, lock released, record archived."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _suspend(sfn_make, asg, process, "AZRebalance")
    process_calls.clear()
    assert ENGINES[engine_name](settings_for(instance_count=2)) == 3
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert _suspended(sfn_make, [asg])[asg] == sorted([process, "AZRebalance"])
    assert process_calls == []
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "refused"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_other_suspended_processes_do_not_refuse(sfn_make, process_calls, engine_name):
    """AZRebalance suspended on both ASGs and Launch on the old one: the deployment runs,
    none of them touched."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _suspend(sfn_make, "qa-a", "AZRebalance", "Launch")
    _suspend(sfn_make, "qa-b", "AZRebalance")
    process_calls.clear()
    assert ENGINES[engine_name](settings_for(instance_count=2)) == 0
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 2
    assert _suspended(sfn_make, ASGS) == {"qa-a": ["AZRebalance", "Launch"], "qa-b": ["AZRebalance"]}
    assert process_calls == []
    assert _archived_status(sfn_make) == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_resume_processes_resumes_for_the_run_and_suspends_again(sfn_make, process_calls,
                                                                 engine_name):
    """--resume-processes: qa-b's Launch resumed before its first step, qa-a's Terminate
    before its drain, both suspended again at the end; deployed, exit 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _suspend(sfn_make, "qa-b", "Launch", "AZRebalance")
    _suspend(sfn_make, "qa-a", "Terminate")
    process_calls.clear()
    assert ENGINES[engine_name](settings_for(instance_count=2, resume_processes=True)) == 0
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    assert process_calls == [("resume", "qa-b", ["Launch"]), ("resume", "qa-a", ["Terminate"]),
                             ("suspend", "qa-b", ["Launch"]), ("suspend", "qa-a", ["Terminate"])]
    assert _suspended(sfn_make, ASGS) == {"qa-a": ["Terminate"], "qa-b": ["AZRebalance", "Launch"]}
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "done"
