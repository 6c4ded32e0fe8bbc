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
from tests.support.aws_env import build_env, capacities, instance_ids
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
    """AZRebalance suspended on both ASGs, Launch on the old one, Terminate on a target that
    is not emptied: the deployment runs, none of them touched."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _suspend(sfn_make, "qa-a", "AZRebalance", "Launch")
    _suspend(sfn_make, "qa-b", "AZRebalance", "Terminate")
    process_calls.clear()
    assert ENGINES[engine_name](settings_for(instance_count=2)) == 0
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 2
    assert _suspended(sfn_make, ASGS) == {"qa-a": ["AZRebalance", "Launch"],
                                          "qa-b": ["AZRebalance", "Terminate"]}
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


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("resume", [False, True], ids=["refused", "resumed"])
def test_single_asg_needs_terminate_to_empty_itself(sfn_make, process_calls, engine_name,
                                                    resume):
    """--single-asg on a populated `qa` with Launch and Terminate suspended: refused (exit 3,
    nothing changed); with --resume-processes, Terminate resumed to empty it, Launch to fill
    it, both suspended again at the end (exit 0)."""
    build_env(sfn_make, "qa", active="a", active_count=1, classic_elb=False, single=True,
              bucket=BUCKET)
    _suspend(sfn_make, "qa", "Launch", "Terminate")
    process_calls.clear()
    code = ENGINES[engine_name](settings_for(single_asg=True, instance_count=1,
                                             resume_processes=resume))
    assert _suspended(sfn_make, ["qa"]) == {"qa": ["Launch", "Terminate"]}
    if not resume:
        assert code == 3 and process_calls == []
        assert _archived_status(sfn_make) == "refused"
        return
    assert code == 0 and SCALED == [1]
    assert process_calls == [("resume", "qa", ["Terminate"]), ("resume", "qa", ["Launch"]),
                             ("suspend", "qa", ["Launch", "Terminate"])]
    assert _archived_status(sfn_make) == "done"


# --- --single-asg -------------------------------------------------------------------------

def _single(make: Callable[[str], Any], *, count: int = 2, min_size: int = 1) -> None:
    build_env(make, "qa", active="a" if count else None, active_count=count, active_min=min_size,
              classic_elb=False, single=True, bucket=BUCKET)


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("flags, scaled, final", [
    ({"instance_count": 3, "instance_count_step": 2}, [2, 3],
     {"desired": 3, "min": 1, "max": 10, "instances": 3}),
    ({"instance_count_match": True}, [2], {"desired": 2, "min": 1, "max": 10, "instances": 2}),
    ({"zero": True}, [], {"desired": 0, "min": 0, "max": 10, "instances": 0}),
], ids=["refill-stepped", "match", "zero"])
def test_single_asg_refreshes_the_asg_named_env(sfn_make, engine_name, flags, scaled, final):
    """--single-asg on `qa` (2 instances, MinSize 1): emptied, then filled step by step with
    its MinSize back (or, --zero, drained); exit 0, lock released, record archived."""
    _single(sfn_make)
    old = set(instance_ids(sfn_make, "qa"))
    assert ENGINES[engine_name](settings_for(single_asg=True, **flags)) == 0
    assert SCALED == scaled
    assert capacities(sfn_make, ["qa"])["qa"] == final
    assert not old & set(instance_ids(sfn_make, "qa"))  # emptied before it was filled
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_single_asg_fills_an_empty_asg(sfn_make, engine_name):
    """--single-asg on an empty `qa`: filled to 2 without emptying, exit 0."""
    _single(sfn_make, count=0, min_size=0)
    assert ENGINES[engine_name](settings_for(single_asg=True, instance_count=2)) == 0
    assert SCALED == [2]
    assert capacities(sfn_make, ["qa"])["qa"]["desired"] == 2


@pytest.mark.parametrize("engine_name", ENGINES)
def test_single_asg_without_an_asg_named_env_is_refused(sfn_make, engine_name):
    """--single-asg where only qa-a / qa-b exist: exit 3, nothing changed, lock released."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(single_asg=True, instance_count=2)) == 3
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "refused"


# --- --clean-up ---------------------------------------------------------------------------

@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("a, b", [(2, 1), (1, 2)], ids=["a-serves-more", "b-serves-more"])
def test_clean_up_empties_the_asg_serving_fewer_and_fills_it(sfn_make, engine_name, a, b):
    """Both populated, one target group: the ASG with fewer healthy targets is emptied and
    filled to 2, the other drained; exit 0."""
    build_env(sfn_make, "qa", active="a", active_count=a, classic_elb=False, target_groups=1,
              bucket=BUCKET)
    sfn_make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b",
                                                      DesiredCapacity=b)
    assert ENGINES[engine_name](settings_for(instance_count=2, clean_up=True)) == 0
    filled, drained = ("qa-b", "qa-a") if a > b else ("qa-a", "qa-b")
    caps = capacities(sfn_make, ASGS)
    assert caps[filled] == {"desired": 2, "min": 0, "max": 10, "instances": 2}
    assert caps[drained]["desired"] == 0
    assert SCALED == [2]
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("target_groups, b", [(0, 1), (1, 2)],
                         ids=["no-load-balancer", "equal-in-tg"])
def test_clean_up_refuses_a_tie(sfn_make, engine_name, target_groups, b):
    """Both populated serving as many healthy instances (without a load balancer none
    serves, whatever their counts): exit 3, both left as they were."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False,
              target_groups=target_groups, bucket=BUCKET)
    sfn_make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b",
                                                      DesiredCapacity=b)
    assert ENGINES[engine_name](settings_for(instance_count=2, clean_up=True)) == 3
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, b)
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "refused"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_clean_up_counts_healthy_instances_not_instances(sfn_make, engine_name):
    """Both with 2 instances behind one classic ELB, one of qa-a's stopped (OutOfService):
    qa-a serves 1, qa-b 2, so qa-a is emptied and filled to 2 and qa-b drained."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=True, bucket=BUCKET)
    sfn_make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b",
                                                      DesiredCapacity=2)
    sfn_make("ec2").stop_instances(InstanceIds=instance_ids(sfn_make, "qa-a")[:1])
    assert ENGINES[engine_name](settings_for(instance_count=2, clean_up=True)) == 0
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert _archived_status(sfn_make) == "done"


# --- --wait-for-scale-down ----------------------------------------------------------------

@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("lbs, code", [
    ({"no_elb_check": True, "target_groups": 1}, 0), ({"classic_elb": True}, 0),
    ({"target_groups": 1}, 1)], ids=["unchecked", "classic-elb", "target-keeps-old-targets"])
def test_wait_for_scale_down_waits_until_empty_and_deregistered(sfn_make, engine_name, lbs,
                                                                code):
    """--wait-for-scale-down: the drain waits until qa-a is empty and its instances left the
    load balancers of the plan (none with --no-elb-check). moto keeps a target group's
    targets after their ASG scaled to 0, so there both engines time out in drain (exit 1,
    lock kept with a failed record naming drain)."""
    world = {"classic_elb": False, **lbs}
    flags = {"no_elb_check": world.pop("no_elb_check", False)}
    build_env(sfn_make, "qa", active="a", active_count=2, bucket=BUCKET, **world)
    assert ENGINES[engine_name](settings_for(instance_count=2, wait_for_scale_down=True,
                                             **flags)) == code
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    if code == 0:
        assert lock_body(sfn_make) is None
        assert _archived_status(sfn_make) == "done"
    else:
        saved = parse(lock_body(sfn_make) or b"")[0]
        assert saved is not None and saved.status == "failed"
        assert "drain" in (saved.last_error or "")


# --- --instance-count-match ---------------------------------------------------------------

@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("step, scaled", [(None, [3]), (2, [2, 3])], ids=["one-step", "step-2"])
def test_instance_count_match_fills_to_the_active_count(sfn_make, engine_name, step, scaled):
    """--instance-count-match with qa-a at 3: qa-b filled to 3 (step 2: 2, 3), qa-a 0."""
    build_env(sfn_make, "qa", active="a", active_count=3, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count_match=True,
                                             instance_count_step=step)) == 0
    assert SCALED == scaled
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 3)
    assert _archived_status(sfn_make) == "done"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_instance_count_match_with_nothing_to_match_is_refused(sfn_make, engine_name):
    """--instance-count-match with both ASGs empty: exit 3, nothing scaled."""
    build_env(sfn_make, "qa", active=None, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count_match=True)) == 3
    assert [c["desired"] for c in capacities(sfn_make, ASGS).values()] == [0, 0]
    assert _archived_status(sfn_make) == "refused"


# --- populated ----------------------------------------------------------------------------

@pytest.fixture
def world(sfn_make: Callable[[str], Any]) -> Iterator[Any]:
    """The emulator's world model, stopped: it moves only when the test advances it."""
    from abfsm.emulator import world as world_model

    stopped = world_model.World(world_model.WorldClock(scale=0.0), boot_s=1)
    world_model.activate(stopped)
    yield stopped
    world_model.deactivate()


@pytest.mark.parametrize("engine_name", ENGINES)
def test_an_asg_at_desired_0_with_instances_left_counts_as_populated(sfn_make, world,
                                                                     engine_name):
    """qa-b scaled to 0 but its instance still Terminating (draining from its target group):
    both populated, refused (exit 3) on both engines, nothing scaled."""
    build_env(sfn_make, "qa", active="a", active_count=1, classic_elb=False, target_groups=1,
              bucket=BUCKET)
    asg = sfn_make("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    world.advance(5)  # booted, InService, registered
    asg.update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=0)
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-b"]["desired"], caps["qa-b"]["instances"]) == (0, 1)
    assert ENGINES[engine_name](settings_for(instance_count=1)) == 3
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (1, 0)
    assert _archived_status(sfn_make) == "refused"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_rollback_suspends_again_what_the_run_resumed(sfn_make, frozen_world, process_calls,
                                                      engine_name):
    """--resume-processes --rollback-on-failure, qa-b's Launch suspended, its instances never
    ready: qa-b's Launch resumed for the run, qa-b rolled back to 0 and its Launch suspended
    again; qa-a untouched; exit 1, lock released, record rolled-back."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    _suspend(sfn_make, "qa-b", "Launch")
    process_calls.clear()
    assert ENGINES[engine_name](settings_for(instance_count=1, resume_processes=True,
                                             rollback_on_failure=True)) == 1
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert process_calls == [("resume", "qa-b", ["Launch"]), ("suspend", "qa-b", ["Launch"])]
    assert _suspended(sfn_make, ASGS) == {"qa-a": [], "qa-b": ["Launch"]}
    assert lock_body(sfn_make) is None
    assert _archived_status(sfn_make) == "rolled-back"
