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
