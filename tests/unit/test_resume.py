"""resume() without AWS: who may resume (heartbeat staleness under freezegun, status, --force),
which state it re-enters with what, and which states a saved plan supports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from structlog.testing import capture_logs

from abfsm import admin, runner
from abfsm.actions.base import Run
from abfsm.clock import SystemClock
from abfsm.context import Plan, Settings
from abfsm.errors import Refused, UsageError
from abfsm.lock import LocalStore, Lock, stale_after_s
from abfsm.record import RunRecord, new_record

T0 = "2026-03-01 10:00:00"
AB_PLAN = Plan(mode="ab", active="qa-a", target="qa-b", target_count=4, steps=[2, 4],
               load_balancers=["qa-public"])


class _NoAws:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"touched AWS ({name})")


NO_AWS: Any = _NoAws()


@pytest.fixture
def spec() -> Any:
    return runner.load(Settings(environment="qa"))


@pytest.fixture
def entered(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Run]]:
    """Replace the machine loop: record which state resume re-enters, with which Run."""
    seen: list[tuple[str, Run]] = []

    def fake_drive(run: Run, state: str, *a: Any, **k: Any) -> runner.Outcome:
        seen.append((state, run))
        return runner.Outcome(0, "done")

    monkeypatch.setattr(runner, "drive", fake_drive)
    return seen


def plant(tmp_path: Path, *, state: str = "wait-elb", status: str = "running",
          plan: Plan = AB_PLAN, failed_state: str | None = None,
          update_timeout: float = 30, **settings: Any) -> RunRecord:
    """A run record holding qa's local lock, as the runner leaves it; heartbeat = now."""
    s = Settings(environment="qa", state_dir=str(tmp_path), update_timeout=update_timeout,
                 elb_names=["qa-public"], **settings)
    rec = new_record("qa", 1, "locked", s.to_dict(), SystemClock())
    rec.state, rec.status, rec.failed_state = state, status, failed_state
    rec.context = plan.to_dict()
    if status == "failed":
        rec.state, rec.last_error, rec.exit_code = "failed", "wait-elb: 0/4 InService", 1
    Lock(LocalStore(tmp_path, "qa"), SystemClock()).acquire(rec)
    return rec


def resume(tmp_path: Path, **kwargs: Any) -> runner.Outcome:
    settings = Settings(environment="qa", state_dir=str(tmp_path), log_format="json")
    return runner.resume(settings, services=NO_AWS, clock=SystemClock(), **kwargs)


# --- heartbeat staleness (freezegun) ----------------------------------------------------------


def test_stale_after_is_three_poll_intervals():
    """The staleness threshold is 3 x the run's --update-timeout, read from its record."""
    with freeze_time(T0):
        rec = new_record("qa", 1, "locked", Settings("qa", update_timeout=5).to_dict(),
                         SystemClock())
    assert stale_after_s(rec) == 15


@pytest.mark.parametrize(("age", "stale"), [(0, False), (90, False), (91, True)])
def test_resume_allowed_only_once_the_heartbeat_is_older_than_three_polls(
        tmp_path, entered, age, stale):
    """update_timeout 30: a running record is alive at 90 s and stale (resumable) at 91 s."""
    with freeze_time(T0) as frozen:
        plant(tmp_path)
        frozen.tick(age)
        if stale:
            assert resume(tmp_path).exit_code == 0
        else:
            with pytest.raises(Refused, match=rf"heartbeat {age} s ago \(stale only after 90 s\)"):
                resume(tmp_path)
    assert [s for s, _ in entered] == (["wait-elb"] if stale else [])


@pytest.mark.parametrize("age", [90, 91])
def test_status_calls_a_heartbeat_stale_exactly_when_resume_would_take_it(tmp_path, age):
    """`abfsm status` says stale at 91 s, not at 90 s: the same rule as resume."""
    with freeze_time(T0) as frozen:
        plant(tmp_path)
        frozen.tick(age)
        data = admin.status_data(Settings("qa", state_dir=str(tmp_path)), services=NO_AWS)
    assert data["current"]["heartbeat_age_s"] == age
    assert data["current"]["stale"] is (age > 90)


def test_a_wait_refreshes_the_heartbeat(tmp_path):
    """Run.heartbeat() during a wait rewrites the record with the current UTC time."""
    with freeze_time(T0) as frozen:
        clock = SystemClock()
        rec = plant(tmp_path)
        lock = Lock(LocalStore(tmp_path, "qa"), clock)
        lock.take_over(lock.holder())  # type: ignore[arg-type]
        run = Run(settings=Settings("qa"), plan=AB_PLAN, aws=NO_AWS, clock=clock,
                  lock=lock, record=rec, spec=runner.load(Settings("qa")))
        frozen.tick(45)
        run.heartbeat()
        saved = lock.holder().record  # type: ignore[union-attr]
    assert saved.heartbeat == "2026-03-01T10:00:45Z"
    assert saved.started_at == "2026-03-01T10:00:00Z"


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_failed_or_interrupted_runs_resume_with_a_fresh_heartbeat(tmp_path, entered, status):
    """A run that failed or was interrupted is resumable at once: its process is known gone."""
    with freeze_time(T0):
        plant(tmp_path, status=status, failed_state="wait-elb")
        assert resume(tmp_path).exit_code == 0
    assert [s for s, _ in entered] == ["wait-elb"]


def test_force_resumes_a_live_looking_run(tmp_path, entered):
    """--force takes over a running record whose heartbeat is fresh."""
    with freeze_time(T0):
        plant(tmp_path, state="scale")
        assert resume(tmp_path, force=True).exit_code == 0
    assert [s for s, _ in entered] == ["scale"]


def test_refusal_names_the_holder_state_and_heartbeat_age(tmp_path, entered):
    """The exit-3 message says which run, by whom, in which state, how old its heartbeat is."""
    with freeze_time(T0) as frozen:
        rec = plant(tmp_path, state="scale")
        frozen.tick(7)
        with pytest.raises(Refused) as caught:
            resume(tmp_path)
    user, host = rec.started_by["user"], rec.started_by["host"]
    assert str(caught.value).startswith(
        f"run {rec.run_id} ({user}@{host}) is running in scale, heartbeat 7 s ago")
    assert "--force" in str(caught.value)


def test_nothing_to_resume_when_the_environment_is_free(tmp_path, entered):
    """No lock: Refused, saying the environment is free."""
    with pytest.raises(Refused, match="nothing to resume for qa: no lock"):
        resume(tmp_path)


def test_a_foreign_lock_is_not_resumed(tmp_path, entered):
    """A lock abfsm did not write (a manual freeze) is nothing to resume."""
    (tmp_path / "qa.lock").write_text("frozen by ops\n")
    with pytest.raises(Refused, match="a lock abfsm did not write .*nothing of abfsm's to resume"):
        resume(tmp_path)
    assert not entered


# --- what resume re-enters, with what ----------------------------------------------------------


def test_a_failed_run_resumes_in_the_state_that_failed(tmp_path, entered):
    """status failed (record state `failed`): resume re-enters failed_state."""
    plant(tmp_path, status="failed", failed_state="wait-elb")
    resume(tmp_path)
    assert [s for s, _ in entered] == ["wait-elb"]


def test_from_overrides_the_state_and_keeps_the_saved_plan(tmp_path, entered):
    """--from scale re-enters scale with the plan inspect decided (target, steps)."""
    plant(tmp_path, status="failed", failed_state="wait-elb")
    resume(tmp_path, from_state="scale")
    ((state, run),) = entered
    assert state == "scale"
    assert run.plan == AB_PLAN


def test_resume_keeps_run_id_and_settings_but_takes_the_invocations_connection(tmp_path, entered):
    """Same run_id and deploy settings from the record; endpoint/log format from this call."""
    rec = plant(tmp_path, status="interrupted", update_timeout=7, instance_count=4)
    settings = Settings(environment="qa", state_dir=str(tmp_path), log_format="json",
                        endpoint_url="http://127.0.0.1:1", instance_count=99)
    runner.resume(settings, services=NO_AWS, clock=SystemClock())
    ((_, run),) = entered
    assert run.record.run_id == rec.run_id
    assert (run.settings.update_timeout, run.settings.instance_count) == (7, 4)
    assert run.settings.endpoint_url == "http://127.0.0.1:1"
    assert run.lock.held


def test_resume_starts_a_fresh_attempt_and_logs_what_it_resumed(tmp_path, entered):
    """The record goes back to running with no error or failed_state; run.started says from."""
    plant(tmp_path, status="failed", failed_state="wait-elb")
    with capture_logs() as logs:
        resume(tmp_path)
    ((_, run),) = entered
    rec = run.record
    assert (rec.status, rec.last_error, rec.failed_state, rec.exit_code) == (
        "running", None, None, None)
    (started,) = [e for e in logs if e["event"] == "run.started"]
    assert (started["command"], started["from_state"], started["previous_status"]) == (
        "resume", "wait-elb", "failed")


def test_from_a_state_the_plan_cannot_support_lists_the_ones_it_can(tmp_path, entered):
    """A run that died before inspect decided: --from drain is a UsageError listing options."""
    rec = plant(tmp_path, state="inspect", plan=Plan(), status="interrupted")
    with pytest.raises(UsageError) as caught:
        resume(tmp_path, from_state="drain")
    assert str(caught.value) == (
        f"cannot resume run {rec.run_id} from drain: it needs mode from inspect, which the "
        "run never decided; it can resume from: locked, inspect")
    assert caught.value.exit_code == 2
    assert not entered


# --- check_state_name and resumable_states --------------------------------------------------


def test_check_state_name_rejects_an_unknown_state_listing_the_working_ones(spec):
    """An unknown --from names the spec and lists the working states."""
    with pytest.raises(UsageError) as caught:
        runner.check_state_name(spec, "wait-dns")
    assert str(caught.value) == (
        "--from wait-dns: not a state of states.yaml (packaged) (states: locked, inspect, "
        "empty, scale, wait-instances, wait-elb, bake, drain, rollback)")


@pytest.mark.parametrize("final", ["done", "failed", "rolled-back"])
def test_check_state_name_rejects_a_final_state(spec, final):
    """A final state is no place to resume from."""
    with pytest.raises(UsageError, match=rf"--from {final}: a final state; resume from a working"):
        runner.check_state_name(spec, final)


def test_check_state_name_accepts_every_working_state(spec):
    """Every working state of the spec passes."""
    for state in spec.working_states:
        runner.check_state_name(spec, state)


def test_before_inspect_decided_only_locked_and_inspect_are_resumable(spec):
    """An empty plan (no target yet) supports only the states before any decision."""
    assert runner.resumable_states(spec, Plan()) == ["locked", "inspect"]


def test_an_ab_plan_with_a_target_supports_scale_to_drain_and_rollback(spec):
    """A decided A/B plan supports scale..drain and rollback; not locked/inspect (the plan is
    decided), not `empty` (needs empty_first)."""
    assert runner.resumable_states(spec, AB_PLAN) == [
        "scale", "wait-instances", "wait-elb", "bake", "drain", "rollback"]


def test_from_inspect_after_the_plan_was_decided_is_refused(tmp_path, entered):
    """Re-inspecting a half-finished deployment would see both ASGs populated and refuse,
    releasing the lock and losing the record: resume refuses it up front (exit 2)."""
    rec = plant(tmp_path, status="failed", failed_state="wait-elb")
    with pytest.raises(UsageError) as caught:
        resume(tmp_path, from_state="inspect")
    assert str(caught.value) == (
        f"cannot resume run {rec.run_id} from inspect: inspect already decided this run's "
        "plan and the deployment went on; re-deciding over a half-finished deployment is "
        "refused; it can resume from: scale, wait-instances, wait-elb, bake, drain, rollback")
    assert not entered
    assert Lock(LocalStore(tmp_path, "qa"), SystemClock()).holder().record.run_id == rec.run_id


def test_resume_rereads_instance_ids_instead_of_trusting_the_saved_ones(tmp_path, entered):
    """The ASG may have replaced instances while the run was dead: resume drops the saved
    instance ids (an observation) and keeps the decisions, so wait-elb describes afresh."""
    plan = Plan(**{**AB_PLAN.to_dict(), "instance_ids": ["i-gone1", "i-gone2"]})
    plant(tmp_path, status="failed", failed_state="wait-elb", plan=plan)
    resume(tmp_path)
    ((state, run),) = entered
    assert state == "wait-elb"
    assert run.plan.instance_ids == []
    assert (run.plan.target, run.plan.steps) == ("qa-b", [2, 4])


def test_a_clean_up_plan_also_supports_empty(spec):
    """With an ASG to empty first (--clean-up / --single-asg), `empty` is resumable too."""
    plan = Plan(**{**AB_PLAN.to_dict(), "empty_first": "qa-b"})
    assert "empty" in runner.resumable_states(spec, plan)


def test_a_zero_plan_has_no_target_so_only_drain_follows_inspect(spec):
    """--zero decides an active ASG but no target: drain is resumable, scale is not."""
    plan = Plan(mode="zero", active="qa-a", active_count=4)
    assert runner.resumable_states(spec, plan) == ["drain"]


# --- the spec decides what resumes (issue 9 §1) and the spec is the run's (issue 8 #15) -----

def _custom_spec(tmp_path: Path, edit: Any) -> Path:
    import yaml

    from abfsm.spec import packaged_spec_path

    data = yaml.safe_load(packaged_spec_path().read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _paused_spec(data: dict[str, Any]) -> None:
    """A final state `paused` (exit 4, keeps the lock, resumable) where refusals go."""
    del data["states"]["refused"]
    data["states"]["paused"] = {"final": True, "exit": 4, "result": "paused",
                                "keeps_lock": True, "resumable": True}
    for t in data["transitions"]:
        if t["dest"] == "refused":
            t["dest"] = "paused"


def _record_spec(tmp_path: Path, rec: RunRecord, path: Path, sha256: str) -> None:
    rec.spec = {"path": str(path), "sha256": sha256}
    lock = Lock(LocalStore(tmp_path, "qa"), SystemClock())
    lock.take_over(lock.holder())  # type: ignore[arg-type]
    lock.save(rec)


def test_a_run_in_a_resumable_final_state_re_enters_the_state_it_left(tmp_path, entered):
    """A run that ended in `paused` (resumable in its spec) resumes without --force into the
    working state of its last move (inspect), with the spec it started with."""
    import hashlib

    path = _custom_spec(tmp_path, _paused_spec)
    rec = plant(tmp_path, state="paused", status="paused", plan=Plan())
    rec.history = [{"at": rec.started_at, "src": "inspect", "dst": "paused", "trigger": "refuse",
                    "elapsed_s": 0.1}]
    _record_spec(tmp_path, rec, path, hashlib.sha256(path.read_bytes()).hexdigest())
    resume(tmp_path)
    ((state, run),) = entered
    assert state == "inspect" and run.spec.path == str(path)


def test_a_paused_run_is_not_resumable_under_a_spec_that_does_not_say_so(tmp_path, entered):
    """The same record under a spec where `paused` is not resumable needs --force (the spec,
    not a built-in list of statuses, decides)."""
    import hashlib

    def not_resumable(data: dict[str, Any]) -> None:
        _paused_spec(data)
        data["states"]["paused"]["resumable"] = False

    path = _custom_spec(tmp_path, not_resumable)
    rec = plant(tmp_path, state="paused", status="paused", plan=Plan())
    _record_spec(tmp_path, rec, path, hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(Refused, match="is paused in paused"):
        resume(tmp_path)


def test_resume_refuses_a_spec_that_changed_since_the_run_started(tmp_path, entered):
    """The recorded spec's hash differs from the file now: exit 2 naming both hashes, unless
    --spec is given explicitly (issue 8 #15)."""
    path = _custom_spec(tmp_path, lambda data: None)
    rec = plant(tmp_path, status="failed", failed_state="wait-elb")
    _record_spec(tmp_path, rec, path, "0" * 64)
    with pytest.raises(UsageError, match="has changed since") as caught:
        resume(tmp_path)
    assert caught.value.exit_code == 2 and not entered
    settings = Settings(environment="qa", state_dir=str(tmp_path), spec=str(path))
    runner.resume(settings, services=NO_AWS, clock=SystemClock())
    assert [s for s, _ in entered] == ["wait-elb"]


def test_resume_runs_the_spec_the_run_started_with(tmp_path, entered):
    """Without --spec, resume loads the spec path on record, not the packaged spec."""
    import hashlib

    path = _custom_spec(tmp_path, lambda data: data["states"]["done"].update(description="shipped"))
    rec = plant(tmp_path, status="failed", failed_state="wait-elb")
    _record_spec(tmp_path, rec, path, hashlib.sha256(path.read_bytes()).hexdigest())
    resume(tmp_path)
    ((_, run),) = entered
    assert run.spec.path == str(path) and run.spec.states["done"].description == "shipped"


def test_resume_may_change_the_timeouts(tmp_path, entered):
    """--update-timeout / --health-check-timeout on resume replace the run's (issue 8 #15)."""
    plant(tmp_path, status="failed", failed_state="wait-elb", update_timeout=30)
    resume(tmp_path, overrides={"update_timeout": 5.0, "health_check_timeout": 1200.0})
    ((_, run),) = entered
    assert (run.settings.update_timeout, run.settings.health_check_timeout) == (5.0, 1200.0)
    assert run.record.settings["health_check_timeout"] == 1200.0
