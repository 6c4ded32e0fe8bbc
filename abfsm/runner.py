"""Drive the machine: persist the record, run the state's action, fire its trigger, repeat.

Entry points: `deploy()` (also what `abfsm demo` calls) and `resume()`. The runner is the
only place that fires triggers; actions return them. Every move is logged once as a
`transition` event and appended to the run record's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from abfsm import __version__
from abfsm.actions import ACTIONS, Action, Run
from abfsm.aws import Services, connect
from abfsm.clock import Clock, SystemClock, utc_iso
from abfsm.context import Plan, Settings
from abfsm.errors import (AbfsmError, Interrupted, LockHeld, LockLost, Refused, StateFailed,
                          UsageError)
from abfsm.lock import LocalStore, Lock, S3Store, stale_after_s
from abfsm.record import FAILED, INTERRUPTED, RUNNING, RunRecord, add_history, new_record
from abfsm.spec import Spec, load_spec, machine_config

_log = structlog.get_logger("abfsm")


@dataclass
class Outcome:
    """How a run ended: what the CLI needs to print and exit with."""

    exit_code: int
    status: str
    message: str = ""
    record: RunRecord | None = None
    path: list[dict[str, Any]] = field(default_factory=list)
    lock: str = ""  # what became of the lock (held by this run: WHERE / released / ...)
    next: list[str] = field(default_factory=list)  # commands an operator can run now
    error: BaseException | None = None  # what failed the run (the CLI adds hints for some)


def load(settings: Settings) -> Spec:
    return load_spec(settings.spec, ACTIONS)


def make_lock(settings: Settings, services: Services, clock: Clock) -> Lock:
    if settings.lock_bucket_name:
        store: Any = S3Store(services.s3, settings.lock_bucket_name, settings.environment)
    else:
        store = LocalStore(settings.state_dir, settings.environment)
    return Lock(store, clock, read_only=settings.dry_run)


def services_for(settings: Settings) -> Services:
    return connect(region=settings.region, endpoint_url=settings.endpoint_url,
                   profile=settings.profile)


def deploy(settings: Settings, *, services: Services | None = None,
           clock: Clock | None = None, spec: Spec | None = None) -> Outcome:
    """Run a deployment from the spec's initial state to a final state."""
    spec = spec or load(settings)  # validated in full before any AWS call
    clock = clock or SystemClock()
    if services is None:
        services = services_for(settings)
        services.preflight()  # profile and region resolved before any state runs
    lock = make_lock(settings, services, clock)
    record = new_record(settings.environment, spec.version, spec.initial, settings.to_dict(), clock)
    run = Run(settings=settings, plan=Plan(), aws=services, clock=clock, lock=lock,
              record=record, spec=spec)
    _started(run, "deploy")
    return drive(run, spec.initial)


def resume(settings: Settings, *, from_state: str | None = None, force: bool = False,
           services: Services | None = None, clock: Clock | None = None) -> Outcome:
    """Re-enter a run's state with its saved context, under the same run_id and lock."""
    spec = load(settings)
    if from_state is not None:
        check_state_name(spec, from_state)
    clock = clock or SystemClock()
    if services is None:
        services = services_for(settings)
        services.preflight()
    lock = make_lock(settings, services, clock)
    holder = lock.holder()
    if holder is None:
        raise Refused(f"nothing to resume for {settings.environment}: no lock at {lock.where} "
                      "(the environment is free; start a new `abfsm deploy`)")
    if holder.record is None:
        raise Refused(f"{lock.where} holds {holder.describe(clock)}; nothing of abfsm's to resume")
    saved = holder.record
    previous_status = saved.status
    age = saved.heartbeat_age(clock)
    saved_settings = Settings.from_dict(saved.settings)
    stale_after = stale_after_s(saved)
    if saved.status not in (FAILED, INTERRUPTED) and age <= stale_after and not force:
        raise Refused(f"run {saved.run_id} ({saved.who}) is {saved.status} in {saved.state}, "
                      f"heartbeat {age:.0f} s ago (stale only after {stale_after:g} s); "
                      "pass --force if that process is really gone")
    state = from_state or (saved.failed_state if saved.status == FAILED and saved.failed_state
                           else saved.state)
    check_state_name(spec, state)
    plan = Plan.from_dict(saved.context)
    why_not = ACTIONS[spec.states[state].action].cannot_resume(plan)  # type: ignore[index]
    if why_not:
        able = resumable_states(spec, plan)
        raise UsageError(f"cannot resume run {saved.run_id} from {state}: {why_not}; "
                         f"it can resume from: {', '.join(able) or 'nothing'}")
    # Decisions are kept; observations are re-read (the ASG may have replaced instances).
    plan.instance_ids = []
    # Keep how this invocation logs and connects; everything else comes from the record.
    for key in ("log_format", "verbose", "region", "endpoint_url", "profile", "spec"):
        setattr(saved_settings, key, getattr(settings, key))
    saved_settings.dry_run = False
    lock.take_over(holder)
    # A fresh attempt: failed_state/last_error will describe this attempt's failure, if any
    # (a stale failed_state would make `next` name the wrong state to resume from).
    saved.status, saved.last_error, saved.failed_state = RUNNING, None, None
    saved.exit_code, saved.finished_at = None, None
    saved.settings = saved_settings.to_dict()
    run = Run(settings=saved_settings, plan=plan, aws=services, clock=clock, lock=lock,
              record=saved, spec=spec)
    _started(run, "resume", from_state=state, previous_status=previous_status)
    return drive(run, state)


def check_state_name(spec: Spec, state: str) -> None:
    if state not in spec.states:
        raise UsageError(f"--from {state}: not a state of {spec.path} "
                         f"(states: {', '.join(spec.working_states)})")
    if spec.is_final(state):
        raise UsageError(f"--from {state}: a final state; resume from a working state "
                         f"({', '.join(spec.working_states)})")


def resumable_states(spec: Spec, plan: Plan) -> list[str]:
    return [s for s in spec.working_states
            if not ACTIONS[spec.states[s].action].cannot_resume(plan)]  # type: ignore[index]


def drive(run: Run, initial: str, actions: Mapping[str, Action] = ACTIONS) -> Outcome:
    """The loop. Ends in a final state, or on interruption / a lost lock.

    `actions` maps the spec's action names to callables (tests pass fakes).
    """
    from transitions import Machine, MachineError

    spec, clock = run.spec, run.clock
    machine = Machine(**machine_config(spec, initial))
    started = clock.monotonic()
    path: list[dict[str, Any]] = []
    error: AbfsmError | None = None
    try:
        while not spec.is_final(machine.state):
            state = machine.state
            run.state = state
            run.record.state = state
            run.record.context = run.plan.to_dict()
            run.lock.save(run.record)  # before the action: a crash leaves this state on record
            entered = clock.monotonic()
            failure: AbfsmError | None = None
            try:
                clock.check_stop()
                trigger = actions[spec.states[state].action](run)  # type: ignore[index]
                if spec.dest(state, trigger) is None:
                    failure = StateFailed(f"{state}: {spec.path} declares no {trigger!r} "
                                          f"transition from {state!r}")
            except (Interrupted, LockLost):
                raise
            except AbfsmError as exc:
                failure = exc
            except Exception as exc:  # a bug must not lose the record
                failure = StateFailed(f"{state}: unexpected {type(exc).__name__}: {exc}")
                _log.debug("state.traceback", exc_info=True)
            if failure is not None:
                error = failure
                trigger = _failure_trigger(run, state, failure)
                run.record.last_error = str(failure)
                run.record.failed_state = state  # resume re-enters the state that failed last
                _log.error("state.failed", state=state, error=str(failure),
                           exit_code=failure.exit_code, next=trigger)
            try:
                machine.trigger(trigger)
            except MachineError:  # cannot happen for a validated spec: every state has `fail`
                raise StateFailed(f"{state}: {spec.path} declares no {trigger!r} transition "
                                  f"from {state!r}") from None
            elapsed = clock.monotonic() - entered
            _log.info("transition", src=state, dst=machine.state, trigger=trigger,
                      elapsed_s=round(elapsed, 3))
            add_history(run.record, state, machine.state, trigger, clock.now(), elapsed)
            path.append({"state": state, "elapsed_s": round(elapsed, 3)})
    except (Interrupted, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, Interrupted) else Interrupted("stopped by a second signal")
        run.record.status = INTERRUPTED
        run.record.last_error = str(stop)
        _save_quietly(run)
        return _finish(run, 130, INTERRUPTED, path, started, stop)
    except LockLost as exc:
        return _finish(run, exc.exit_code, "lock-lost", path, started, exc)

    final = spec.states[machine.state]
    exit_code = error.exit_code if (error is not None and final.exit != 0) else final.exit
    run.record.state = final.name
    run.record.status = final.name
    run.record.exit_code = exit_code
    run.record.finished_at = utc_iso(clock.now())
    run.record.context = run.plan.to_dict()
    try:
        if final.keeps_lock:
            run.lock.save(run.record)
        else:
            run.lock.release(run.record)
    except LockLost as exc:
        return _finish(run, exc.exit_code, "lock-lost", path, started, exc)
    return _finish(run, exit_code, final.name, path, started, error)


def _failure_trigger(run: Run, state: str, exc: AbfsmError) -> str:
    if isinstance(exc, Refused) and run.spec.dest(state, "refuse"):
        return "refuse"
    if run.settings.rollback_on_failure and run.spec.dest(state, "rollback"):
        return "rollback"
    return "fail"


def _save_quietly(run: Run) -> None:
    try:
        run.lock.save(run.record)
    except AbfsmError:
        pass


def _started(run: Run, command: str, **extra: Any) -> None:
    from abfsm.log import bind

    bind(run_id=run.record.run_id, env=run.settings.environment)
    _log.info("run.started", command=command, version=__version__, spec=run.spec.path,
              spec_version=run.spec.version, lock=run.lock.where,
              settings=run.settings.to_dict(), started_by=run.record.started_by, **extra)


def _finish(run: Run, exit_code: int, status: str, path: list[dict[str, Any]], started: float,
            error: BaseException | None) -> Outcome:
    record, plan, settings = run.record, run.plan, run.settings
    if run.lock.held:
        lock_state = "held by this run: " + run.lock.where
    elif run.lock.taken:
        lock_state = "released"
    else:
        lock_state = "not taken (dry run)" if run.lock.read_only else "not taken"
    if status == "lock-lost":
        lock_state = "lost (removed or replaced by someone else)"
    next_steps = _next_steps(run, status, error)
    message = str(error) if error else ""
    _log.info(
        "run.finished", outcome=status, exit_code=exit_code,
        duration_s=round(run.clock.monotonic() - started, 3), path=path,
        final_state=record.state, failed_state=record.failed_state if error else None,
        error=message or None, active=plan.active, target=plan.target,
        active_count=plan.active_count, target_count=plan.target_count,
        lock=lock_state, next=next_steps, dry_run=settings.dry_run,
    )
    return Outcome(exit_code, status, message, record, path, lock_state, next_steps, error)


def _next_steps(run: Run, status: str, error: BaseException | None = None) -> list[str]:
    """What an operator can do now, as commands to copy."""
    env = run.settings.environment
    conn = f" --lock-bucket-name {run.settings.lock_bucket_name}" if run.settings.lock_bucket_name else ""
    if status in (FAILED, INTERRUPTED) or (status == RUNNING):
        where = run.record.failed_state or run.record.state
        return [f"fix the cause, then: abfsm resume --environment {env}{conn}  (re-enters {where})",
                f"or inspect it: abfsm status --environment {env}{conn}",
                f"or give up and free the environment: abfsm unlock --environment {env}{conn} "
                f"--run-id {run.record.run_id}"]
    if isinstance(error, LockHeld):
        return [f"see who holds it: abfsm status --environment {env}{conn}",
                "if that run died, carry it on: abfsm resume --environment "
                f"{env}{conn}; if it is a manual freeze that is over: abfsm unlock "
                f"--environment {env}{conn} --force"]
    return []
