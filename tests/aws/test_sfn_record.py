"""The execution keeps the run record truthful, and a failed execution is resumed with
`abfsm sfn start --resume` (moto's ASL interpreter, in process).

The frozen world (`frozen_world`) keeps new instances Pending, so an execution waits in
wait-instances (1 s polls, 4 polls) and then fails keeping the lock; advancing its clock an
hour lets them boot, which is the "fix" before a resume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from abfsm.record import RunRecord, parse
from tests.support.aws_env import REGION, build_env, capacities
from tests.support.sfn_moto import (
    ASGS, BUCKET, ROLE, archived_runs, cli, lock_body, run_local, run_sfn, settings_for, start_argv,
)

REAL_WAIT_S = 30.0  # how long a test waits (really) for an execution to reach a point


def _machine() -> str:
    code, arn = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION)
    assert code == 0, arn
    return arn


def _start(machine: str, *extra: str) -> tuple[int, str]:
    """(exit code, the execution ARN: the first line; with --wait the log follows it)."""
    code, out = cli("sfn", "start", "--state-machine-arn", machine, "--region", REGION, *extra)
    return code, (out.splitlines() or [""])[0]


def _resume(machine: str, *extra: str) -> tuple[int, str]:
    return _start(machine, "--resume", "--environment", "qa", "--lock-bucket-name", BUCKET, *extra)


def _record(make: Callable[[str], Any]) -> RunRecord | None:
    body = lock_body(make)
    return parse(body)[0] if body else None


def _until(what: Callable[[], Any], why: str) -> Any:
    deadline = time.monotonic() + REAL_WAIT_S
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not reached in {REAL_WAIT_S} s: {why}")


def _ended(make: Callable[[str], Any], execution: str) -> dict[str, Any]:
    sfn = make("stepfunctions")
    return dict(_until(lambda: (d := sfn.describe_execution(executionArn=execution))["status"]
                       != "RUNNING" and d, f"{execution} ended"))


def _asg_updates(make: Callable[[str], Any], execution: str) -> int:
    events = make("stepfunctions").get_execution_history(executionArn=execution,
                                                         maxResults=1000)["events"]
    return sum(1 for e in events if e["type"] == "TaskScheduled"
               and e["taskScheduledEventDetails"]["resource"] == "updateAutoScalingGroup")


def _last_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def _executions(make: Callable[[str], Any], machine: str) -> list[str]:
    found = make("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    return sorted(e["name"] for e in found)


def _waiting_record(make: Callable[[str], Any], after: str = "") -> RunRecord:
    """The lock's record once the execution waits in wait-instances (with a heartbeat later
    than `after`)."""
    def waiting() -> RunRecord | None:
        rec = _record(make)
        if rec is None or rec.state != "wait-instances" or rec.heartbeat <= after:
            return None
        return rec

    return _until(waiting, f"the record in wait-instances, heartbeat after {after!r}")  # type: ignore[no-any-return]


def test_the_record_follows_the_execution_while_it_waits(sfn_make, frozen_world):
    """While an execution waits for instances, the lock's record says wait-instances, its
    heartbeat is later than started_at and moves on with the polls, its history holds each
    move so far and its context the plan inspect decided; `abfsm status` shows them."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    code, execution = _start(_machine(), *start_argv(settings_for(instance_count=2)))
    assert code == 0
    entered = _waiting_record(sfn_make)
    assert entered.heartbeat > entered.started_at
    rec = _waiting_record(sfn_make, after=entered.heartbeat)  # a poll's refresh
    assert rec.status == "running" and rec.engine == "stepfunctions"
    assert rec.execution_arn == execution
    assert [(h["src"], h["trigger"], h["dst"]) for h in rec.history] == [
        ("locked", "acquired", "inspect"), ("inspect", "deploy", "scale"),
        ("scale", "scaled", "wait-instances")]
    assert rec.context["target"] == "qa-b" and rec.context["active"] == "qa-a"
    assert rec.context["count"] == {"n": 2, "step": 2, "desired": 2}
    code, status = cli("status", "--environment", "qa", "--lock-bucket-name", BUCKET,
                       "--region", REGION)
    assert code == 0 and "is running in wait-instances" in status
    assert "plan       qa-a -> qa-b (2 instances, steps of 2, at 2)" in status
    assert "scale -> wait-instances (scaled)" in status
    assert _ended(sfn_make, execution)["status"] == "FAILED"


def test_a_lock_taken_away_mid_execution_stops_it_without_further_asg_changes(sfn_make, frozen_world):
    """`abfsm unlock --force` while the execution waits: its next save fails its IfMatch and
    it ends FAILED abfsm.StateFailed saying the lock was taken away; no ASG change after the
    scale (no rollback either), no lock written again, only the unlock's record archived."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    code, execution = _start(_machine(), *start_argv(settings_for(instance_count=2,
                                                                  rollback_on_failure=True)))
    assert code == 0
    _waiting_record(sfn_make)
    assert cli("unlock", "--environment", "qa", "--force", "--lock-bucket-name", BUCKET,
               "--region", REGION)[0] == 0
    ended = _ended(sfn_make, execution)
    assert ended["status"] == "FAILED" and ended["error"] == "abfsm.StateFailed"
    assert "wait-instances: stopped, its lock was taken away" in ended["cause"]
    assert _asg_updates(sfn_make, execution) == 1  # the scale; no rollback, no drain
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 2)
    assert lock_body(sfn_make) is None
    [key] = archived_runs(sfn_make)  # archived by the unlock, never rewritten by the execution
    archived = parse(sfn_make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert archived is not None and archived.status == "unlocked"


def test_a_failed_execution_is_resumed_to_the_end(sfn_make, frozen_world):
    """Failed in wait-instances (instances never ready), then the world serves again:
    `sfn start --resume --wait` exits 0 with execution RUN_ID-resume-1, qa-b serves 2 and
    qa-a is 0, the lock is released and the archived record (same run_id) is done, its
    history holding the resume."""
    from abfsm.emulator import world as world_model

    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert run_sfn(settings_for(instance_count=2)) == 1
    failed = _record(sfn_make)
    assert failed is not None and failed.status == "failed"
    assert failed.failed_state == "wait-instances"
    world = world_model.current()
    assert world is not None
    world.clock.advance(3600)  # the fix: the frozen world moves on, the instances boot
    code, execution = _resume(_machine(), "--wait")
    assert code == 0
    assert execution.endswith(f":{failed.run_id}-resume-1")
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 2)
    assert lock_body(sfn_make) is None
    [key] = archived_runs(sfn_make)
    done = parse(sfn_make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert done is not None and done.status == "done" and done.run_id == failed.run_id
    moves = [(h["src"], h["trigger"], h["dst"]) for h in done.history]
    assert moves[:len(failed.history)] == [(h["src"], h["trigger"], h["dst"])
                                           for h in failed.history]
    assert moves[len(failed.history):] == [
        ("failed", "resume", "wait-instances"), ("wait-instances", "instances_ready", "wait-elb"),
        ("wait-elb", "healthy", "bake"), ("bake", "baked", "drain"), ("drain", "drained", "done")]


def test_a_lock_changed_since_it_was_read_is_not_taken_over(sfn_make, frozen_world):
    """A resuming execution whose ETag no longer matches the lock (rewritten in between)
    ends FAILED abfsm.Refused; the lock's bytes and the ASGs are as they were."""
    from abfsm.sfn.engine import resume_input

    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert run_sfn(settings_for(instance_count=2)) == 1
    saved = _record(sfn_make)
    assert saved is not None
    stale = sfn_make("s3").head_object(Bucket=BUCKET, Key="qa.lock")["ETag"]
    body = (lock_body(sfn_make) or b"").replace(b'"status":"failed"', b'"status":"failed" ')
    sfn_make("s3").put_object(Bucket=BUCKET, Key="qa.lock", Body=body)  # someone else wrote it
    context = dict(saved.context)
    count = context.pop("count")
    document = resume_input(saved, settings_for(instance_count=2), "wait-instances", stale,
                            context, count)
    execution = sfn_make("stepfunctions").start_execution(
        stateMachineArn=_machine(), name=f"{saved.run_id}-resume-1",
        input=json.dumps(document))["executionArn"]
    ended = _ended(sfn_make, execution)
    assert ended["status"] == "FAILED" and ended["error"] == "abfsm.Refused"
    assert "changed since abfsm sfn start --resume read it" in ended["cause"]
    assert lock_body(sfn_make) == body
    assert _asg_updates(sfn_make, execution) == 0
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 2


def test_resume_without_a_lock_is_refused(sfn_make, capsys):
    """No lock: exit 3, one line saying so, and no execution started."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    machine = _machine()
    capsys.readouterr()
    assert _resume(machine)[0] == 3
    assert "nothing to resume for qa: no lock" in _last_line(capsys)
    assert _executions(sfn_make, machine) == []


def test_resume_of_a_local_engine_run_is_refused(sfn_make, frozen_world, capsys):
    """A lock held by a failed `abfsm deploy` run: exit 3, the lock's bytes untouched, no
    execution started."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert run_local(settings_for(instance_count=2)) == 1
    body = lock_body(sfn_make)
    assert body is not None and b'"engine": "local"' in body
    machine = _machine()
    capsys.readouterr()
    assert _resume(machine)[0] == 3
    assert "not by an execution: carry it on with `abfsm resume`" in _last_line(capsys)
    assert lock_body(sfn_make) == body
    assert _executions(sfn_make, machine) == []


def test_resume_while_the_execution_still_runs_is_refused(sfn_make, frozen_world, capsys):
    """The record's execution is RUNNING: exit 3, no second execution started."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    machine = _machine()
    code, execution = _start(machine, *start_argv(settings_for(instance_count=2)))
    assert code == 0
    rec = _waiting_record(sfn_make)
    capsys.readouterr()
    assert _resume(machine)[0] == 3
    assert "is still RUNNING" in _last_line(capsys)
    assert _executions(sfn_make, machine) == [rec.run_id]
    _ended(sfn_make, execution)


@pytest.mark.parametrize("state", ["drain", "scale"])
def test_resume_from_a_state_the_plan_cannot_support_is_a_usage_error(sfn_make, state, capsys):
    """A run that failed in inspect (qa-b missing) decided no plan: --from-state drain or
    scale exits 2 naming what is missing; the lock is untouched and nothing started."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    machine = _machine()
    rec = {"kind": "abfsm.run", "schema": 1, "spec_version": 1, "engine": "stepfunctions",
           "run_id": "20261201T000000Z-abcdef", "environment": "qa", "state": "failed",
           "status": "failed", "failed_state": "inspect", "started_at": "2026-12-01T00:00:00Z",
           "heartbeat": "2026-12-01T00:00:01Z", "settings": settings_for().to_dict(),
           "context": {"count": {}}, "history": [],
           "execution_arn": machine.replace(":stateMachine:", ":execution:") + ":gone"}
    sfn_make("s3").put_object(Bucket=BUCKET, Key="qa.lock", Body=json.dumps(rec).encode())
    before = lock_body(sfn_make)
    gone = sfn_make("stepfunctions").start_execution(
        stateMachineArn=machine, name="gone", input=json.dumps({"resume": {"state": "x"}}))
    assert _ended(sfn_make, gone["executionArn"])["status"] == "FAILED"  # ended: not RUNNING
    capsys.readouterr()
    assert _resume(machine, "--from-state", state)[0] == 2
    assert f"cannot resume run 20261201T000000Z-abcdef from {state}: it needs" in _last_line(capsys)
    assert lock_body(sfn_make) == before
    assert _executions(sfn_make, machine) == ["gone"]
