"""Drive the machine: persist the record, run the state's action, fire its trigger, repeat.

Entry points: `deploy()` (also what `abfsm demo` calls) and `resume()`. The transitions
Machine built from the spec is the one table of moves: the runner fires the trigger an
action returned (or the spec's failure trigger when it raised) and the Machine decides
where it leads; an undeclared trigger is its `MachineError`, recorded as a failure. Every
move is logged once, from the Machine's `after_state_change` callback, as a `transition`
event and appended to the run record's history.

What a final state means (exit code, lock, failure, resumable, wording) is read from the
spec. Whatever happens, `drive()` returns an Outcome and logs `run.finished` last. The
runner says what an operator can do next as data (`NextStep`); the CLI writes the command
lines (`render_next`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from abfsm import __version__
from abfsm.actions import ACTIONS, Action, Run
from abfsm.aws import Services, connect
from abfsm.clock import Clock, SystemClock, utc_iso
from abfsm.context import Plan, Settings
from abfsm.errors import (AbfsmError, Interrupted, LockHeld, LockLost, Refused, ReleaseFailed,
                          StateFailed, UsageError)
from abfsm.lock import LocalStore, Lock, S3Store, stale_after_s
from abfsm.record import INTERRUPTED, RUNNING, RunRecord, add_history, new_record
from abfsm.spec import Spec, StateSpec, load_spec, machine_config

_log = structlog.get_logger("abfsm")


@dataclass(frozen=True)
class NextStep:
    """Something an operator can do now: an abfsm command, why, and its own options.

    The CLI renders it with the connection flags of the run (see cli.next_command).
    """

    command: str  # "resume", "status", "unlock" or "sfn start" (options: resume, state_machine_arn)
    why: str  # e.g. "fix the cause, then"
    options: Mapping[str, Any] = field(default_factory=dict)  # run_id, force, from_state
    note: str = ""  # e.g. "re-enters scale"


RenderNext = Callable[[NextStep, Settings], str]


def plain_next(step: NextStep, settings: Settings) -> str:
    """A rendering that knows no command-line syntax (tests, library use)."""
    opts = ", ".join(f"{k}={v}" for k, v in step.options.items())
    return f"{step.why}: {step.command} {settings.environment}" + (f" ({opts})" if opts else "")


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
    steps: list[NextStep] = field(default_factory=list)  # the same, as data
    error: BaseException | None = None  # what failed the run (the CLI adds hints for some)


def load(settings: Settings) -> Spec:
    return load_spec(settings.spec, ACTIONS)


def prepare(settings: Settings) -> Spec:
    """The spec, validated, and the flags checked against it: before any AWS call."""
    spec = load(settings)
    check_flags(settings, spec)
    return spec


def check_flags(settings: Settings, spec: Spec) -> None:
    if settings.rollback_on_failure and not spec.declares("rollback"):
        raise UsageError(f"--rollback-on-failure: {spec.path} declares no 'rollback' "
                         "transition, so a failure could not roll back; drop the flag or "
                         "use a spec that has one")


def make_lock(settings: Settings, services: Services, clock: Clock) -> Lock:
    if settings.lock_bucket_name:
        store: Any = S3Store(services.s3, settings.lock_bucket_name, settings.environment)
    else:
        store = LocalStore(settings.state_dir, settings.environment)
    return Lock(store, clock, read_only=settings.dry_run)


def services_for(settings: Settings) -> Services:
    return connect(region=settings.region, endpoint_url=settings.endpoint_url,
                   profile=settings.profile)


def spec_identity(settings: Settings, spec: Spec) -> dict[str, Any]:
    """What the record keeps of the spec: its path (None: the packaged one) and hash."""
    path = str(Path(settings.spec).resolve()) if settings.spec else None
    return {"path": path, "sha256": spec.sha256}


def deploy(settings: Settings, *, services: Services | None = None,
           clock: Clock | None = None, spec: Spec | None = None,
           render_next: RenderNext = plain_next, run_id: str | None = None) -> Outcome:
    """Run a deployment from the spec's initial state to a final state.

    `run_id`: the id to run under, when the caller logged about the run before it started
    (abfsm demo); a new one otherwise."""
    spec = spec or prepare(settings)  # validated in full before any AWS call
    check_flags(settings, spec)
    clock = clock or SystemClock()
    if services is None:
        services = services_for(settings)
        services.preflight()  # profile and region resolved before any state runs
    lock = make_lock(settings, services, clock)
    record = new_record(settings.environment, spec.version, spec.initial, settings.to_dict(), clock,
                        run_id)
    record.spec = spec_identity(settings, spec)
    run = Run(settings=settings, plan=Plan(), aws=services, clock=clock, lock=lock,
              record=record, spec=spec)
    _started(run, "deploy")
    return drive(run, spec.initial, render_next=render_next)


def resume(settings: Settings, *, from_state: str | None = None, force: bool = False,
           services: Services | None = None, clock: Clock | None = None,
           overrides: Mapping[str, Any] | None = None,
           render_next: RenderNext = plain_next) -> Outcome:
    """Re-enter a run's state with its saved context, under the same run_id and lock.

    The run carries on with the spec it started with (its recorded path and hash): a spec
    that changed since is refused unless `settings.spec` names one explicitly. `overrides`
    may change settings an operator wants different now (the timeouts).
    """
    explicit_spec = settings.spec is not None
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
    if saved.engine != "local":
        # Its heartbeat is not refreshed by this process: staleness says nothing about it.
        # arn:aws:states:R:A:execution:MACHINE:NAME -> arn:aws:states:R:A:stateMachine:MACHINE
        arn = saved.execution_arn or ""
        machine = (arn.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:")
                   if ":execution:" in arn else "ARN")
        raise Refused(f"run {saved.run_id} is run by a Step Functions execution "
                      f"({saved.execution_arn or 'ARN not recorded'}); `abfsm resume` does not take "
                      "over executions: once it has ended, carry it on with `abfsm sfn start "
                      f"--resume --state-machine-arn {machine}` (same --environment and "
                      "--lock-bucket-name), or unlock it by its run id")
    spec = _resume_spec(settings, saved, explicit_spec)
    if from_state is not None:
        check_state_name(spec, from_state)
    previous_status = saved.status
    age = saved.heartbeat_age(clock)
    saved_settings = Settings.from_dict(saved.settings)
    stale_after = stale_after_s(saved)
    ended = spec.states.get(saved.status)
    resumable = saved.status == INTERRUPTED or (ended is not None and ended.final
                                                and ended.resumable)
    if not resumable and age <= stale_after and not force:
        raise Refused(f"run {saved.run_id} ({saved.who}) is {saved.status} in {saved.state}, "
                      f"heartbeat {age:.0f} s ago (stale only after {stale_after:g} s); "
                      "pass --force if that process is really gone")
    state = from_state or left_state(saved, spec)
    check_state_name(spec, state)
    plan = Plan.from_dict(saved.context)
    why_not = _action(ACTIONS, spec, state).cannot_resume(plan)
    if why_not:
        able = resumable_states(spec, plan)
        raise UsageError(f"cannot resume run {saved.run_id} from {state}: {why_not}; "
                         f"it can resume from: {', '.join(able) or 'nothing'}")
    # Decisions are kept; observations are re-read (the ASG may have replaced instances).
    plan.instance_ids = []
    # Keep how this invocation logs and connects; everything else comes from the record.
    for key in ("log_format", "verbose", "region", "endpoint_url", "profile",
                "notify", "notify_on", "notify_create"):
        setattr(saved_settings, key, getattr(settings, key))
    if explicit_spec:
        saved_settings.spec = settings.spec
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(saved_settings, key, value)
    saved_settings.dry_run = False
    check_flags(saved_settings, spec)
    lock.take_over(holder)
    # A fresh attempt: failed_state/last_error will describe this attempt's failure, if any
    # (a stale failed_state would make `next` name the wrong state to resume from).
    saved.status, saved.last_error, saved.failed_state = RUNNING, None, None
    saved.error_type = None
    saved.exit_code, saved.finished_at = None, None
    saved.settings = saved_settings.to_dict()
    saved.spec = spec_identity(saved_settings, spec)
    run = Run(settings=saved_settings, plan=plan, aws=services, clock=clock, lock=lock,
              record=saved, spec=spec)
    _started(run, "resume", from_state=state, previous_status=previous_status)
    return drive(run, state, render_next=render_next)


def _resume_spec(settings: Settings, saved: RunRecord, explicit: bool) -> Spec:
    if explicit:
        return prepare_for_resume(settings.spec)
    recorded = saved.spec or {}
    spec = prepare_for_resume(recorded.get("path") or Settings.from_dict(saved.settings).spec)
    want = recorded.get("sha256")
    if want and spec.sha256 != want:
        raise UsageError(f"run {saved.run_id} started with {spec.path} as it was then "
                         f"(sha256 {want[:12]}), and the file has changed since "
                         f"(sha256 {spec.sha256[:12]}); pass --spec FILE to resume with a "
                         "spec deliberately")
    return spec


def prepare_for_resume(path: str | None) -> Spec:
    return load_spec(path, ACTIONS)


def left_state(saved: RunRecord, spec: Spec) -> str:
    """The working state a run left: the last move's source if it ended in a final state
    (failed, paused, ...), else the state it was in (interrupted, or a dead process)."""
    ended = spec.states.get(saved.state)
    if ended is not None and ended.final:
        if saved.failed_state:
            return saved.failed_state
        if saved.history:
            return str(saved.history[-1]["src"])
    return saved.state


def check_state_name(spec: Spec, state: str) -> None:
    if state not in spec.states:
        raise UsageError(f"--from {state}: not a state of {spec.path} "
                         f"(states: {', '.join(spec.working_states)})")
    if spec.is_final(state):
        raise UsageError(f"--from {state}: a final state; resume from a working state "
                         f"({', '.join(spec.working_states)})")


def resumable_states(spec: Spec, plan: Plan) -> list[str]:
    return [s for s in spec.working_states
            if not _action(ACTIONS, spec, s).cannot_resume(plan)]


def _action(actions: Mapping[str, Any], spec: Spec, state: str) -> Any:
    """The callable a state runs: from `actions`, else (a third-party action a test's
    mapping does not list) from the registry."""
    name: str = spec.states[state].action  # type: ignore[assignment]
    try:
        return actions[name]
    except KeyError:
        return ACTIONS[name]


def drive(run: Run, initial: str, actions: Mapping[str, Any] = ACTIONS, *,
          render_next: RenderNext = plain_next) -> Outcome:
    """Run the machine from `initial` to a final state; always ends with `run.finished`.

    `actions` maps the spec's action names to callables (tests pass fakes).
    """
    return _Driver(run, actions, render_next).drive(initial)


class _Driver:
    def __init__(self, run: Run, actions: Mapping[str, Any], render_next: RenderNext) -> None:
        self.run, self.actions, self.render_next = run, actions, render_next
        run.actions = actions
        self.started = run.clock.monotonic()
        self.entered = self.started
        self.path: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def drive(self, initial: str) -> Outcome:
        try:
            return self._drive(initial)
        except (Interrupted, KeyboardInterrupt) as exc:
            return self._interrupted(exc)
        except LockLost as exc:
            return self._finish(exc.exit_code, "lock-lost", exc,
                                description="stopped: its lock was taken away")
        except Exception as exc:  # a bug in the engine itself: still report the end
            _log.error("run.crashed", error=f"{type(exc).__name__}: {exc}",
                       error_type=type(exc).__name__, exc_info=True)
            self._note_error(exc)
            self._save_quietly()
            return self._finish(1, "crashed", exc, description="stopped by an internal error")

    def _drive(self, initial: str) -> Outcome:
        from transitions import Machine, MachineError

        spec = self.run.spec
        machine = Machine(**machine_config(spec, initial), after_state_change=self._moved)
        while not spec.is_final(machine.state):
            state = machine.state
            failure = self._enter(state)
            trigger = "" if failure else self._act(state)
            failure = failure or self.failure
            if failure is not None:
                trigger = self._fail(state, failure, machine.get_triggers(state))
            try:
                machine.trigger(trigger)
            except (MachineError, AttributeError) as exc:  # a trigger the spec does not route
                # from here: MachineError for a trigger declared elsewhere, AttributeError
                # ("Do not know event named ...") for one declared nowhere
                failure = StateFailed(f"{state}: {spec.path} declares no {trigger!r} "
                                      f"transition from {state!r}")
                self._fail(state, failure, [], error_type=type(exc).__name__)
                machine.trigger("fail")  # a validated spec declares it from every state
        return self._final(spec.states[machine.state])

    # -- one state ----------------------------------------------------------------------
    def _enter(self, state: str) -> AbfsmError | None:
        run = self.run
        run.state = run.record.state = state
        run.record.context = run.plan.to_dict()
        self.entered = run.clock.monotonic()
        self.failure: AbfsmError | None = None
        try:
            run.lock.save(run.record)  # before the action: a crash leaves this state on record
        except (Interrupted, LockLost):
            raise
        except AbfsmError as exc:  # e.g. the record write was denied
            return exc
        return None

    def _act(self, state: str) -> str:
        run = self.run
        try:
            run.clock.check_stop()
            return str(_action(self.actions, run.spec, state)(run))
        except (Interrupted, LockLost):
            raise
        except AbfsmError as exc:
            self.failure = exc
        except Exception as exc:  # a bug must not lose the record
            self.failure = StateFailed(f"{state}: unexpected {type(exc).__name__}: {exc}")
            self.failure.__cause__ = exc
        return ""

    def _fail(self, state: str, failure: AbfsmError, triggers: Iterable[str], *,
              error_type: str | None = None) -> str:
        run = self.run
        self.error = failure
        cause = failure.__cause__ if isinstance(failure.__cause__, Exception) else None
        kind = error_type or type(cause or failure).__name__
        trigger = _failure_trigger(run, failure, set(triggers))
        run.record.last_error = str(failure)
        run.record.error_type = kind
        run.record.failed_state = state  # resume re-enters the state that failed last
        extra: dict[str, Any] = {}
        if cause is not None:  # unexpected: the traceback belongs in the log
            extra["exc_info"] = (type(cause), cause, cause.__traceback__)
        _log.error("state.failed", state=state, error=str(failure), error_type=kind,
                   exit_code=failure.exit_code, next=trigger, **extra)
        return trigger

    def _moved(self, event: Any) -> None:
        """The Machine's after_state_change: log the move once and put it on record."""
        run = self.run
        src, dst = event.transition.source, event.transition.dest
        elapsed = run.clock.monotonic() - self.entered
        _log.info("transition", src=src, dst=dst, trigger=event.event.name,
                  elapsed_s=round(elapsed, 3))
        add_history(run.record, src, dst, event.event.name, run.clock.now(), elapsed)
        self.path.append({"state": src, "elapsed_s": round(elapsed, 3)})

    # -- the end ------------------------------------------------------------------------
    def _final(self, final: StateSpec) -> Outcome:
        run, record = self.run, self.run.record
        record.state = record.status = final.name
        record.exit_code = final.exit
        record.finished_at = utc_iso(run.clock.now())
        record.context = run.plan.to_dict()
        description = final.description or final.name
        keep = final.keeps_lock
        released_why = ""
        if keep and final.failed and not self._changed_aws():
            keep, released_why = False, "nothing was changed in AWS"
        try:
            if keep:
                run.lock.save(record)
            else:
                run.lock.release(record)
        except LockLost as exc:
            return self._finish(exc.exit_code, "lock-lost", exc,
                                description="stopped: its lock was taken away")
        except ReleaseFailed as exc:
            what = "completed" if not final.failed else f"ended {final.name}"
            err = ReleaseFailed(f"the deployment itself {what} ({final.name}), but the lock "
                                f"could not be released: {exc}")
            err.__cause__ = exc  # what refused the release stays findable (an AccessDenied)
            record.last_error = str(err)
            # What AWS refused (e.g. AccessDenied on DeleteObject) is what the CLI explains.
            cause = exc.__cause__ or exc.__context__
            return self._finish(err.exit_code, final.name, err, release_failed=True,
                                cause=cause if isinstance(cause, AbfsmError) else None,
                                description=f"{description}, but its lock could not be released")
        except AbfsmError as exc:
            return self._finish(1, final.name, exc,
                                description=f"{description}, but its record could not be written")
        return self._finish(final.exit, final.name, self.error, description=description,
                            released_why=released_why)

    def _changed_aws(self) -> bool:
        """Whether any state run so far declares a mutating AWS call (resumed attempts'
        states included). Undeclared (fake) actions count as changing."""
        run = self.run
        ran = [str(h.get("src")) for h in run.record.history] + [run.state]
        for state in dict.fromkeys(s for s in ran if s in run.spec.states):
            st = run.spec.states[state]
            if st.final:
                continue
            act = _declaration(self.actions, st.action)
            if act is None:
                return True
            if any(c.mutating for c in act.aws_calls(run.settings, st.params)):
                return True
        return False

    def _interrupted(self, exc: BaseException) -> Outcome:
        stop = exc if isinstance(exc, Interrupted) else Interrupted("stopped by a second signal")
        self.run.record.status = INTERRUPTED
        self.run.record.last_error = str(stop)
        self.run.record.error_type = type(stop).__name__
        self._save_quietly()
        return self._finish(130, INTERRUPTED, stop, description="was interrupted")

    def _note_error(self, exc: BaseException) -> None:
        self.run.record.last_error = f"{type(exc).__name__}: {exc}"
        self.run.record.error_type = type(exc).__name__

    def _save_quietly(self) -> None:
        try:
            self.run.lock.save(self.run.record)
        except Exception:  # noqa: BLE001 (already ending on an error; the log says which)
            pass

    def _finish(self, exit_code: int, status: str, error: BaseException | None, *,
                description: str, release_failed: bool = False,
                released_why: str = "", cause: BaseException | None = None) -> Outcome:
        """Log run.finished and build the Outcome; `cause`: the underlying error the Outcome
        reports (the CLI adds hints for it), when `error` wraps one."""
        run, record, plan, settings = self.run, self.run.record, self.run.plan, self.run.settings
        if release_failed:
            lock_state = f"could not be released: still at {run.lock.where}"
        elif status == "lock-lost":
            lock_state = "lost (removed or replaced by someone else)"
        elif run.lock.held:
            lock_state = "held by this run: " + run.lock.where
        elif run.lock.taken:
            lock_state = "released" + (f" ({released_why})" if released_why else "")
        else:
            lock_state = "not taken (dry run)" if run.lock.read_only else "not taken"
        holds = run.lock.held or release_failed
        steps = _next_steps(run, status, error, holds=holds)
        next_lines = [self.render_next(step, settings) for step in steps]
        message = str(error) if error else ""
        ended = run.spec.states.get(status)
        said_no = (error is None and ended is not None and ended.failed
                   and bool(record.last_error))  # a gate's no (Run.said_no), routed
        if said_no:
            message = str(record.last_error)
        _log.info(
            "run.finished", outcome=status, description=description, exit_code=exit_code,
            duration_s=round(run.clock.monotonic() - self.started, 3), path=self.path,
            final_state=record.state,
            failed_state=record.failed_state if error or said_no else None,
            error=message or None, active=plan.active, target=plan.target,
            active_count=plan.active_count, target_count=plan.target_count,
            lock=lock_state, next=next_lines, dry_run=settings.dry_run,
            changed=sorted(_changed_resources(run, self.actions)),
        )
        return Outcome(exit_code, status, message, record, list(self.path), lock_state,
                       next_lines, steps, cause or error)


def _failure_trigger(run: Run, exc: AbfsmError, triggers: set[str]) -> str:
    """The spec's trigger for a failure: refuse (a precondition), rollback (with
    --rollback-on-failure) where the state declares them, else fail."""
    if isinstance(exc, Refused) and "refuse" in triggers:
        return "refuse"
    if run.settings.rollback_on_failure and "rollback" in triggers:
        return "rollback"
    return "fail"


def _changed_resources(run: Run, actions: Mapping[str, Any]) -> set[str]:
    """The symbolic resources (asg:target, asg:active, ...) the states run so far declare
    mutating calls on: what the summary may say was changed."""
    out: set[str] = set()
    for h in run.record.history:
        st = run.spec.states.get(str(h.get("src")))
        act = _declaration(actions, st.action) if st else None
        if act is not None:
            out |= {c.resource for c in act.aws_calls(run.settings, st.params) if c.mutating}  # type: ignore[union-attr]
    return out


def _declaration(actions: Mapping[str, Any], name: str | None) -> Action | None:
    """The declaration of the action a state runs: the one passed in, or, for a stand-in
    without one (a test's plain function), the registered action of that name."""
    if name is None:
        return None
    act = actions.get(name)
    if isinstance(act, Action):
        return act
    try:
        found = ACTIONS[name]
    except KeyError:
        return None
    return found if isinstance(found, Action) else None


def _started(run: Run, command: str, **extra: Any) -> None:
    from abfsm.log import bind

    bind(run_id=run.record.run_id, env=run.settings.environment)
    _log.info("run.started", command=command, version=__version__, spec=run.spec.path,
              spec_version=run.spec.version, lock=run.lock.where,
              settings=run.settings.to_dict(), started_by=run.record.started_by, **extra)


def _next_steps(run: Run, status: str, error: BaseException | None, *,
                holds: bool) -> list[NextStep]:
    """What an operator can do now. Resume and unlock only when this run holds a lock."""
    record = run.record
    run_id = {"run_id": record.run_id}
    if isinstance(error, ReleaseFailed):
        return [NextStep("unlock", "free the environment", run_id),
                NextStep("status", "or inspect it")]
    if holds:
        ended = run.spec.states.get(status)
        resumable = status in (INTERRUPTED, RUNNING) or (ended is not None and ended.resumable)
        steps = []
        checkpoint = ended is not None and ended.final and ended.result == "paused"
        if checkpoint:  # e.g. an approval with --pause-at-approval: decide, then resume
            steps += [NextStep("approve", "decide"),
                      NextStep("reject", "or", note="add --reason TEXT")]
        if resumable:
            where = left_state(record, run.spec) if ended is not None else record.state
            why = ("then" if checkpoint else
                   "fix the cause, then" if error is not None else "carry it on")
            steps.append(NextStep("resume", why, note=f"re-enters {where}"))
        steps.append(NextStep("status", "or inspect it" if steps else "inspect it"))
        steps.append(NextStep("unlock", "or give up and free the environment", run_id))
        return steps
    if isinstance(error, LockHeld):
        steps = [NextStep("status", "see who holds it")]
        if error.foreign:  # a manual freeze or an unreadable record: only --force lifts it
            steps.append(NextStep("unlock", "if that freeze is over (or the record is corrupt), "
                                            "lift it", {"force": True}))
        return steps
    return []

