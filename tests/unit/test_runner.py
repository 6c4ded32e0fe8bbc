"""The runner loop with fake actions: record before action, one transition event per move,
failure / refusal / rollback / interruption / lost lock, and what each does to the lock."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from abfsm import runner
from abfsm.actions.base import Run
from abfsm.context import Plan, Settings
from abfsm.errors import Interrupted, Refused, StateFailed
from abfsm.lock import LocalStore, Lock
from abfsm.record import RunRecord, new_record
from tests.fakes import FakeClock

ENV = "qa"
HAPPY_PATH = ["locked", "inspect", "scale", "wait-instances", "wait-elb", "bake", "drain"]


class NoAws:
    """Services stand-in: any AWS use from a fake-action run is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"fake-action run touched AWS ({name})")


def make_run(tmp_path: Path, clock: FakeClock, **settings: Any) -> Run:
    """A Run over a local lock in tmp_path, the packaged spec, no AWS."""
    s = Settings(environment=ENV, state_dir=str(tmp_path / "state"), **settings)
    spec = runner.load(s)
    lock = Lock(LocalStore(s.state_dir, ENV), clock, read_only=s.dry_run)
    record = new_record(ENV, spec.version, spec.initial, s.to_dict(), clock)
    return Run(settings=s, plan=Plan(), aws=NoAws(), clock=clock, lock=lock, record=record,  # type: ignore[arg-type]
               spec=spec)


def lock_path(run: Run) -> Path:
    return Path(run.settings.state_dir) / f"{ENV}.lock"


def read_lock(run: Run) -> RunRecord | None:
    return RunRecord.from_json(lock_path(run).read_bytes())


def fakes(calls: list[str] | None = None, **override: Callable[[Run], str]) -> dict[str, Any]:
    """Fake actions for a standard two-step A/B deployment; `override` replaces some."""
    calls = calls if calls is not None else []

    def acquire_lock(run: Run) -> str:
        run.lock.acquire(run.record)
        return "acquired"

    def inspect(run: Run) -> str:
        run.plan = Plan(mode="ab", active="qa-a", active_count=4, target="qa-b",
                        target_count=4, steps=[2, 4])
        return "deploy"

    def scale_step(run: Run) -> str:
        return "scaled"

    def wait_instances(run: Run) -> str:
        if run.plan.step_index < len(run.plan.steps) - 1:
            run.plan.step_index += 1
            return "next_step"
        return "instances_ready"

    def wait_elb(run: Run) -> str:
        return "healthy"

    def bake(run: Run) -> str:
        return "baked"

    def drain(run: Run) -> str:
        return "drained"

    def empty_target(run: Run) -> str:
        return "emptied"

    def rollback(run: Run) -> str:
        return "rolled_back"

    table = {f.__name__: f for f in (acquire_lock, inspect, scale_step, wait_instances,
                                      wait_elb, bake, drain, empty_target, rollback)}
    table.update(override)

    def recording(name: str, fn: Callable[[Run], str]) -> Callable[[Run], str]:
        def call(run: Run) -> str:
            calls.append(run.state)
            return fn(run)
        return call

    return {name: recording(name, fn) for name, fn in table.items()}


def drive(run: Run, actions: dict[str, Any], initial: str | None = None) -> tuple[runner.Outcome, list[dict[str, Any]]]:
    """Bind run_id/env as the runner does, drive, return the outcome and captured events."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as events:
        runner._started(run, "test")
        outcome = runner.drive(run, initial or run.spec.initial, actions=actions)
    return outcome, events


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def test_happy_path_logs_one_transition_per_move(tmp_path, clock):
    """A two-step deployment logs exactly one `transition` per move, in order, ending in done."""
    run = make_run(tmp_path, clock)
    outcome, events = drive(run, fakes())
    moves = [(e["src"], e["dst"], e["trigger"]) for e in named(events, "transition")]
    assert moves == [
        ("locked", "inspect", "acquired"), ("inspect", "scale", "deploy"),
        ("scale", "wait-instances", "scaled"), ("wait-instances", "scale", "next_step"),
        ("scale", "wait-instances", "scaled"), ("wait-instances", "wait-elb", "instances_ready"),
        ("wait-elb", "bake", "healthy"), ("bake", "drain", "baked"), ("drain", "done", "drained"),
    ]
    assert outcome.exit_code == 0 and outcome.status == "done"


def test_transition_event_has_exactly_the_fixed_keys(tmp_path, clock):
    """Each transition event carries event, run_id, env, src, dst, trigger, elapsed_s and no more."""
    run = make_run(tmp_path, clock)
    _, events = drive(run, fakes())
    for event in named(events, "transition"):
        keys = set(event) - {"log_level"}
        assert keys == {"event", "run_id", "env", "src", "dst", "trigger", "elapsed_s"}
        assert event["run_id"] == run.record.run_id and event["env"] == ENV


def test_transition_elapsed_is_the_time_spent_in_the_state(tmp_path, clock):
    """elapsed_s is the clock time the state's action took (here 42 s in wait-elb)."""
    def slow_elb(run: Run) -> str:
        run.clock.sleep(42)
        return "healthy"

    run = make_run(tmp_path, clock)
    _, events = drive(run, fakes(wait_elb=slow_elb))
    elapsed = {e["src"]: e["elapsed_s"] for e in named(events, "transition")}
    assert elapsed["wait-elb"] == 42.0
    assert elapsed["drain"] == 0.0


def test_history_in_the_record_matches_the_transitions(tmp_path, clock):
    """The archived record's history lists every move with src, dst and trigger."""
    run = make_run(tmp_path, clock)
    outcome, events = drive(run, fakes())
    archived = json.loads((tmp_path / "state" / ENV / "runs" / f"{run.record.run_id}.json").read_text())
    assert [(h["src"], h["dst"], h["trigger"]) for h in archived["history"]] == [
        (e["src"], e["dst"], e["trigger"]) for e in named(events, "transition")]
    assert archived["status"] == "done" and archived["exit_code"] == 0


def test_record_is_saved_before_each_action_runs(tmp_path, clock):
    """Every action after the lock is taken finds its own state already written in the lock file."""
    seen: dict[str, str] = {}

    def peek(result: str | Callable[[Run], str]) -> Callable[[Run], str]:
        def action(run: Run) -> str:
            saved = read_lock(run)
            assert saved is not None
            seen.setdefault(run.state, saved.state)
            return result(run) if callable(result) else result
        return action

    base = fakes()
    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(inspect=peek(base["inspect"]), scale_step=peek("scaled"),
                                  wait_instances=peek(base["wait_instances"]),
                                  wait_elb=peek("healthy"), bake=peek("baked"),
                                  drain=peek("drained")))
    assert outcome.exit_code == 0
    assert seen == {s: s for s in ("inspect", "scale", "wait-instances", "wait-elb", "bake", "drain")}


def test_plan_decided_in_inspect_is_on_record_before_scale(tmp_path, clock):
    """The record written before scale already holds inspect's plan (resume needs it)."""
    context: dict[str, Any] = {}

    def scale(run: Run) -> str:
        context.update(read_lock(run).context)  # type: ignore[union-attr]
        return "scaled"

    run = make_run(tmp_path, clock)
    drive(run, fakes(scale_step=scale))
    assert context["target"] == "qa-b" and context["steps"] == [2, 4]


def test_state_failed_ends_in_failed_and_keeps_the_lock(tmp_path, clock):
    """StateFailed in wait-elb -> failed, exit 1, lock kept with status failed and failed_state."""
    def broken(run: Run) -> str:
        raise StateFailed("wait-elb: 3/4 InService in qa-public after 600 s")

    run = make_run(tmp_path, clock)
    outcome, events = drive(run, fakes(wait_elb=broken))
    assert (outcome.exit_code, outcome.status) == (1, "failed")
    saved = read_lock(run)
    assert saved is not None and saved.run_id == run.record.run_id
    assert (saved.status, saved.failed_state, saved.exit_code) == ("failed", "wait-elb", 1)
    assert "3/4 InService" in saved.last_error  # type: ignore[operator]
    assert named(events, "transition")[-1]["trigger"] == "fail"
    assert not (tmp_path / "state" / ENV / "runs").exists()


def test_failure_logs_state_failed_once(tmp_path, clock):
    """A failing action is logged once as state.failed naming the state, the error and what next."""
    def broken(run: Run) -> str:
        raise StateFailed("boom")

    run = make_run(tmp_path, clock)
    _, events = drive(run, fakes(scale_step=broken))
    failed = named(events, "state.failed")
    assert len(failed) == 1
    assert (failed[0]["state"], failed[0]["error"], failed[0]["next"]) == ("scale", "boom", "fail")


def test_refused_in_inspect_ends_refused_and_releases_the_lock(tmp_path, clock):
    """Refused in inspect -> refused, exit 3, lock file gone, no later action runs."""
    def refuse(run: Run) -> str:
        raise Refused("both qa-a and qa-b have instances")

    calls: list[str] = []
    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(calls, inspect=refuse))
    assert (outcome.exit_code, outcome.status) == (3, "refused")
    assert not lock_path(run).exists()
    assert calls == ["locked", "inspect"]
    archived = tmp_path / "state" / ENV / "runs" / f"{run.record.run_id}.json"
    assert json.loads(archived.read_text())["status"] == "refused"


def test_rollback_on_failure_in_wait_elb_rolls_back_and_releases(tmp_path, clock):
    """--rollback-on-failure: wait-elb fails -> rollback -> rolled-back, exit 1, lock released, archived."""
    def broken(run: Run) -> str:
        raise StateFailed("wait-elb timed out")

    calls: list[str] = []
    run = make_run(tmp_path, clock, rollback_on_failure=True)
    outcome, events = drive(run, fakes(calls, wait_elb=broken))
    assert (outcome.exit_code, outcome.status) == (1, "rolled-back")
    assert [(e["src"], e["dst"], e["trigger"]) for e in named(events, "transition")][-2:] == [
        ("wait-elb", "rollback", "rollback"), ("rollback", "rolled-back", "rolled_back")]
    assert calls[-1] == "rollback" and "drain" not in calls
    assert not lock_path(run).exists()
    archived = json.loads((tmp_path / "state" / ENV / "runs" / f"{run.record.run_id}.json").read_text())
    assert (archived["status"], archived["failed_state"]) == ("rolled-back", "wait-elb")


def test_without_rollback_flag_a_failure_does_not_roll_back(tmp_path, clock):
    """Without --rollback-on-failure the rollback action never runs (original behaviour)."""
    def broken(run: Run) -> str:
        raise StateFailed("wait-elb timed out")

    calls: list[str] = []
    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(calls, wait_elb=broken))
    assert outcome.status == "failed" and "rollback" not in calls


@pytest.mark.parametrize("trigger", ["bogus", "drained"], ids=["declared-nowhere", "declared-elsewhere"])
def test_an_undeclared_trigger_fails_the_run_on_record(tmp_path, clock, trigger):
    """A trigger the spec does not declare from `scale` (a name declared nowhere, or one
    declared for another state) is not accepted: the run fails in scale, exit 1, with the
    reason on record and the lock kept, instead of escaping the loop and losing the record."""
    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(scale_step=lambda run: trigger))
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    record = read_lock(run)
    assert record is not None and record.failed_state == "scale"
    assert f"no {trigger!r} transition from 'scale'" in (record.last_error or "")


def test_a_failing_rollback_is_recorded_as_the_state_to_resume(tmp_path, clock):
    """wait-elb fails, then rollback fails too: failed_state is rollback (what resume retries),
    and both failures were logged as state.failed."""
    def broken_wait(run: Run) -> str:
        raise StateFailed("wait-elb timed out")

    def broken_rollback(run: Run) -> str:
        raise StateFailed("rollback: UpdateAutoScalingGroup throttled")

    run = make_run(tmp_path, clock, rollback_on_failure=True)
    outcome, logs = drive(run, fakes(wait_elb=broken_wait, rollback=broken_rollback))
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert [e["state"] for e in logs if e["event"] == "state.failed"] == ["wait-elb", "rollback"]
    record = read_lock(run)
    assert record is not None and record.failed_state == "rollback"


def test_interrupted_keeps_the_lock_with_status_interrupted(tmp_path, clock):
    """A stop during a wait -> status interrupted, exit 130, lock kept for resume."""
    def waiting(run: Run) -> str:
        for _ in range(10):
            run.clock.sleep(30)
        return "healthy"

    clock.stop_after_sleeps(2)
    calls: list[str] = []
    run = make_run(tmp_path, clock)
    outcome, events = drive(run, fakes(calls, wait_elb=waiting))
    assert (outcome.exit_code, outcome.status) == (130, "interrupted")
    saved = read_lock(run)
    assert saved is not None and (saved.status, saved.state) == ("interrupted", "wait-elb")
    assert calls[-1] == "wait-elb" and len(clock.sleeps) == 2
    assert named(events, "run.finished")[0]["exit_code"] == 130


def test_interrupted_raised_by_an_action_is_not_a_failure(tmp_path, clock):
    """Interrupted raised inside an action is not recorded as failed and takes no fail transition."""
    def stop(run: Run) -> str:
        raise Interrupted("stopped by SIGINT")

    run = make_run(tmp_path, clock)
    outcome, events = drive(run, fakes(scale_step=stop))
    assert outcome.exit_code == 130
    assert not named(events, "state.failed")
    assert read_lock(run).status == "interrupted"  # type: ignore[union-attr]


def test_lost_lock_stops_the_run_before_the_next_action(tmp_path, clock):
    """Lock file deleted during scale -> exit 3 at the next record write; no further action runs."""
    def scale_then_lose(run: Run) -> str:
        lock_path(run).unlink()
        return "scaled"

    calls: list[str] = []
    run = make_run(tmp_path, clock)
    outcome, events = drive(run, fakes(calls, scale_step=scale_then_lose))
    assert (outcome.exit_code, outcome.status) == (3, "lock-lost")
    assert calls == ["locked", "inspect", "scale"]
    assert not lock_path(run).exists()
    assert named(events, "run.finished")[0]["lock"].startswith("lost")


def test_lost_lock_replaced_by_another_run_is_left_in_place(tmp_path, clock):
    """Lock replaced by someone else during scale -> exit 3; their lock is untouched."""
    def scale_then_replaced(run: Run) -> str:
        lock_path(run).write_bytes(b"frozen by ops")
        return "scaled"

    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(scale_step=scale_then_replaced))
    assert outcome.exit_code == 3
    assert lock_path(run).read_bytes() == b"frozen by ops"


def test_unexpected_exception_is_recorded_as_failed(tmp_path, clock):
    """A bug (KeyError) in an action -> failed, exit 1, error on record; not lost."""
    def buggy(run: Run) -> str:
        return {}["missing"]  # type: ignore[no-any-return]

    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(wait_instances=buggy))
    assert (outcome.exit_code, outcome.status) == (1, "failed")
    saved = read_lock(run)
    assert saved is not None and saved.failed_state == "wait-instances"
    assert "unexpected KeyError" in saved.last_error  # type: ignore[operator]


def test_lock_held_by_another_run_is_refused(tmp_path, clock):
    """A second run finding the lock taken ends refused (exit 3) and leaves the holder's lock alone."""
    first = make_run(tmp_path, clock)
    first.lock.acquire(first.record)
    before = lock_path(first).read_bytes()
    calls: list[str] = []
    second = make_run(tmp_path, clock)
    outcome, _ = drive(second, fakes(calls))
    assert (outcome.exit_code, outcome.status) == (3, "refused")
    assert calls == ["locked"]
    assert lock_path(first).read_bytes() == before


def test_run_finished_reports_outcome_and_path(tmp_path, clock):
    """run.finished names outcome, exit code and the path of states with time spent in each."""
    run = make_run(tmp_path, clock)
    _, events = drive(run, fakes())
    finished = named(events, "run.finished")
    assert len(finished) == 1
    assert (finished[0]["outcome"], finished[0]["exit_code"]) == ("done", 0)
    assert [p["state"] for p in finished[0]["path"]] == [
        "locked", "inspect", "scale", "wait-instances", "scale", "wait-instances",
        "wait-elb", "bake", "drain"]
    assert finished[0]["lock"] == "released"


def test_a_second_signal_still_records_the_run_as_interrupted(tmp_path, clock):
    """KeyboardInterrupt (the second SIGINT) mid-action: status interrupted, exit 130, lock kept."""
    def hard_stop(run: Run) -> str:
        raise KeyboardInterrupt

    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(wait_instances=hard_stop))
    assert (outcome.status, outcome.exit_code) == ("interrupted", 130)
    record = read_lock(run)
    assert record is not None and (record.status, record.state) == ("interrupted", "wait-instances")


# --- the Machine and the spec are the truth (issue 9 §1) ------------------------------------

def spec_file(tmp_path: Path, edit: Callable[[dict[str, Any]], None], name: str = "custom.yaml") -> Path:
    """The packaged spec's data, edited, written to tmp_path."""
    import yaml

    from abfsm.spec import packaged_spec_path

    data = yaml.safe_load(packaged_spec_path().read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _route(data: dict[str, Any], trigger: str, source: str, dest: str) -> None:
    for t in data["transitions"]:
        if t["trigger"] == trigger and t["source"] == source:
            t["dest"] = dest


def test_the_run_follows_the_moves_of_the_spec_it_is_given(tmp_path, clock):
    """A spec that checks the load balancer before the ASG (scaled -> wait-elb -> wait-instances)
    is run in that order: the moves come from the spec's Machine, not from a built-in walk."""
    def edit(data: dict[str, Any]) -> None:
        _route(data, "scaled", "scale", "wait-elb")
        _route(data, "healthy", "wait-elb", "wait-instances")
        _route(data, "instances_ready", "wait-instances", "bake")

    calls: list[str] = []
    run = make_run(tmp_path, clock, spec=str(spec_file(tmp_path, edit)))
    outcome, _ = drive(run, fakes(calls))
    assert outcome.status == "done"
    assert calls == ["locked", "inspect", "scale", "wait-elb", "wait-instances", "scale",
                     "wait-elb", "wait-instances", "bake", "drain"]


def test_a_trigger_declared_elsewhere_is_the_machines_error_on_record(tmp_path, clock):
    """`drained` from scale is refused by the transitions Machine: its MachineError is the
    recorded error type, and the run fails in scale."""
    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(scale_step=lambda run: "drained"))
    record = read_lock(run)
    assert outcome.status == "failed" and record is not None
    assert (record.failed_state, record.error_type) == ("scale", "MachineError")


def test_a_final_states_exit_is_the_exit_code_even_after_an_error(tmp_path, clock):
    """refused with exit 5 and failed with exit 7 in the spec: a refusal exits 5 and a failure
    7 (before, the error's own code, 3 or 1, overrode the spec's)."""
    def edit(data: dict[str, Any]) -> None:
        data["states"]["refused"]["exit"] = 5
        data["states"]["failed"]["exit"] = 7

    path = str(spec_file(tmp_path, edit))

    def refuse(run: Run) -> str:
        raise Refused("both populated")

    refused, _ = drive(make_run(tmp_path / "r", clock, spec=path), fakes(inspect=refuse))
    failed, _ = drive(make_run(tmp_path / "f", clock, spec=path),
                      fakes(wait_elb=lambda run: (_ for _ in ()).throw(StateFailed("no"))))
    assert (refused.status, refused.exit_code) == ("refused", 5)
    assert (failed.status, failed.exit_code) == ("failed", 7)


def test_a_failure_state_called_broken_keeps_the_lock_and_offers_resume(tmp_path, clock):
    """A spec whose failure state is `broken` (result: failure, keeps_lock, resumable) ends a
    failed run there with the lock kept, status broken, and resume suggested."""
    def edit(data: dict[str, Any]) -> None:
        data["states"]["broken"] = data["states"].pop("failed")
        for t in data["transitions"]:
            if t["dest"] == "failed":
                t["dest"] = "broken"

    run = make_run(tmp_path, clock, spec=str(spec_file(tmp_path, edit)))
    outcome, events = drive(run, fakes(wait_elb=lambda run: (_ for _ in ()).throw(StateFailed("no"))))
    record = read_lock(run)
    assert (outcome.status, outcome.exit_code) == ("broken", 1)
    assert record is not None and (record.status, record.failed_state) == ("broken", "wait-elb")
    assert [s.command for s in outcome.steps] == ["resume", "status", "unlock"]
    assert named(events, "run.finished")[0]["description"] == "FAILED"


@pytest.mark.parametrize(("timeout", "expected"), [(42, 42.0), ("health_check_timeout", 900.0)])
def test_a_states_timeout_is_honoured(tmp_path, clock, timeout, expected):
    """`timeout: 42` on wait-elb makes its wait give up after 42 s; naming a setting uses it."""
    from abfsm.actions.waiting import Progress, wait_until

    def never_ready(run: Run) -> str:
        wait_until(run, lambda: Progress(0, 1, False, "0/1 healthy"))
        return "healthy"

    def edit(data: dict[str, Any]) -> None:
        data["states"]["wait-elb"]["timeout"] = timeout

    run = make_run(tmp_path, clock, spec=str(spec_file(tmp_path, edit)),
                   health_check_timeout=900.0, update_timeout=10.0)
    outcome, _ = drive(run, fakes(wait_elb=never_ready))
    assert outcome.status == "failed"
    assert f"after {expected:g} s" in outcome.message


# --- issue 8: every end is reported -------------------------------------------------------------

def test_a_release_that_fails_after_the_deployment_ends_exit_1_and_says_so(tmp_path, clock):
    """Releasing the lock fails (DeleteObject denied) after drain: exit 1, run.finished last,
    the summary says the deployment completed and names the unlock command (issue 8 #3)."""
    from abfsm import cli, log
    from abfsm.errors import ReleaseFailed

    run = make_run(tmp_path, clock)

    def denied(record: RunRecord) -> None:
        raise ReleaseFailed("s3 DeleteObject failed: AccessDenied")

    run.lock.release = denied  # type: ignore[method-assign]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as events:
        runner._started(run, "deploy")
        outcome = runner.drive(run, "locked", actions=fakes(), render_next=cli.next_command)
    assert outcome.exit_code == 1
    assert events[-1]["event"] == "run.finished" and events[-1]["exit_code"] == 1
    text = "\n".join(log.summary_lines(events[-1]))
    assert "succeeded, but its lock could not be released" in text
    assert "the deployment itself completed (done)" in text and "AccessDenied" in text
    assert (f"abfsm unlock --environment qa --state-dir {tmp_path / 'state'} "
            f"--run-id {run.record.run_id}") in text


def test_an_unexpected_error_outside_an_action_still_ends_with_run_finished(tmp_path, clock):
    """A bug while releasing (RuntimeError) does not escape drive(): run.finished is the last
    event, exit 1, and the record keeps the exception type (issue 8 #3, #8)."""
    run = make_run(tmp_path, clock)

    def crash(record: RunRecord) -> None:
        raise RuntimeError("disk on fire")

    run.lock.release = crash  # type: ignore[method-assign]
    outcome, events = drive(run, fakes())
    assert outcome.exit_code == 1
    assert [e["event"] for e in events][-2:] == ["run.crashed", "run.finished"]
    assert run.record.error_type == "RuntimeError" and "disk on fire" in (run.record.last_error or "")


def test_a_failure_before_any_change_releases_the_lock_and_keeps_the_record(tmp_path, clock):
    """inspect fails (an AWS read denied): nothing was changed, so the failed record goes to
    ENV/runs/, the lock is released and the summary says so; exit 1 (issue 8 #4)."""
    from abfsm.errors import AwsError

    def denied(run: Run) -> str:
        raise AwsError("autoscaling DescribeAutoScalingGroups failed: AccessDenied")

    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(inspect=denied))
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert not lock_path(run).exists()
    archived = json.loads((Path(run.settings.state_dir) / "qa" / "runs" /
                           f"{run.record.run_id}.json").read_text())
    assert (archived["status"], archived["failed_state"]) == ("failed", "inspect")
    assert outcome.lock == "released (nothing was changed in AWS)"
    assert [s.command for s in outcome.steps] == []


def test_a_failure_after_a_change_keeps_the_lock(tmp_path, clock):
    """wait-instances fails after scale (a mutating call) ran: the lock is kept (issue 8 #4)."""
    run = make_run(tmp_path, clock)
    outcome, _ = drive(run, fakes(wait_instances=lambda run: (_ for _ in ()).throw(StateFailed("x"))))
    assert outcome.status == "failed" and lock_path(run).exists()
    assert outcome.lock.startswith("held by this run")


def test_an_unexpected_exception_is_logged_at_error_with_its_traceback(tmp_path, clock):
    """A KeyError in an action: the JSON state.failed line is level error, names the type and
    carries the traceback; the record keeps type and message (issue 8 #8)."""
    import io

    from abfsm import log

    def buggy(run: Run) -> str:
        return {}["missing"]  # type: ignore[no-any-return]

    out = io.StringIO()
    log.configure("json", stream=out)
    try:
        run = make_run(tmp_path, clock)
        runner.drive(run, "locked", actions=fakes(wait_instances=buggy))
    finally:
        log.reset()
    (failed,) = [json.loads(line) for line in out.getvalue().splitlines()
                 if '"state.failed"' in line]
    assert failed["level"] == "error" and failed["error_type"] == "KeyError"
    assert "Traceback" in failed["exception"] and "buggy" in failed["exception"]
    assert run.record.error_type == "KeyError" and "'missing'" in (run.record.last_error or "")


def test_rollback_on_failure_with_a_spec_without_rollback_is_a_usage_error(tmp_path):
    """--rollback-on-failure with examples/specs/no-elb-wait.yaml (no rollback transition) is
    refused before any AWS call, exit 2 (issue 8 #13)."""
    from abfsm.errors import EXIT_USAGE, UsageError

    example = Path(__file__).resolve().parents[2] / "examples" / "specs" / "no-elb-wait.yaml"
    settings = Settings(environment=ENV, spec=str(example), rollback_on_failure=True)
    with pytest.raises(UsageError, match="declares no 'rollback' transition") as caught:
        runner.deploy(settings, services=NoAws())  # type: ignore[arg-type]
    assert caught.value.exit_code == EXIT_USAGE


# --- issue 8 #14: the commands it suggests -------------------------------------------------

def test_next_commands_carry_every_flag_that_finds_the_run(tmp_path, clock):
    """A failed run's resume/status/unlock lines carry bucket, region, endpoint, profile, and
    --spec for resume."""
    from abfsm import cli

    run = make_run(tmp_path, clock, region="eu-west-1", endpoint_url="http://127.0.0.1:5000",
                   profile="ops")
    run.settings.lock_bucket_name, run.settings.spec = "locks", "my spec.yaml"
    outcome = runner.drive(run, "locked", actions=fakes(
        wait_elb=lambda run: (_ for _ in ()).throw(StateFailed("no"))), render_next=cli.next_command)
    conn = ("--environment qa --lock-bucket-name locks --region eu-west-1 "
            "--endpoint-url http://127.0.0.1:5000 --profile ops")
    assert outcome.next == [
        f"fix the cause, then: abfsm resume {conn} --spec 'my spec.yaml'  (re-enters wait-elb)",
        f"or inspect it: abfsm status {conn}",
        f"or give up and free the environment: abfsm unlock {conn} --run-id {run.record.run_id}"]


def test_a_run_that_holds_no_lock_suggests_no_resume_or_unlock(tmp_path, clock):
    """Refused because another run holds the lock: only `status` is suggested."""
    first = make_run(tmp_path, clock)
    first.lock.acquire(first.record)
    outcome, _ = drive(make_run(tmp_path, clock), fakes())
    assert outcome.status == "refused"
    assert [s.command for s in outcome.steps] == ["status"]
