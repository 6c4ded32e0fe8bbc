"""The Step Functions engine's commands: compile, deploy the state machine, start and follow.

Everything a user hands in is checked before the first AWS call (UsageError, exit 2): the
deploy flags as `abfsm deploy` checks them, plus what an execution needs (--lock-bucket-name,
a well-formed state machine ARN) and what this preview does not compile yet (UNSUPPORTED).
An execution that ends FAILED raises the error its Fail state names (abfsm.Refused → exit 3,
abfsm.StateFailed / abfsm.RolledBack → exit 1, abfsm.InvalidInput: an input the machine
refused before any AWS call → exit 2), with the cause as the message.

`start_resume()` is `abfsm resume` for an execution: it reads the run record in the lock and
starts `RUN_ID-resume-N`, whose input carries the saved settings, plan, count, history and
the lock's ETag; the machine's `abfsm.resume?` entry takes the lock over and re-enters the
state (abfsm/sfn/compiler.py resume_entry()).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from abfsm.aws import Services
from abfsm.aws.stepfunctions import Execution, HistoryEvent
from abfsm.clock import Clock, utc_iso
from abfsm.context import Plan, Settings
from abfsm.errors import AbfsmError, Refused, StateFailed, UsageError
from abfsm.record import RunRecord, new_run_id
from abfsm.runner import NextStep, RenderNext, plain_next
from abfsm.sfn.compiler import (
    ERROR_INPUT, ERROR_REFUSED, compile_spec, resumable, to_json, used_integrations, wait_limits,
)
from abfsm.sfn.history import HistoryMapper
from abfsm.spec import Spec

EXECUTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[A-Za-z0-9_-]{1,80}:[^\s:]{1,80}$")
STATE_MACHINE_ARN = re.compile(
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
FOLLOW_INTERVAL_S = 2.0

# What this preview does not compile yet: refused by `sfn start` (exit 2, no AWS call).
UNSUPPORTED: tuple[tuple[str, Callable[[Settings], bool]], ...] = (
    ("--image-id", lambda s: bool(s.image_id)),
)
_WHY = {
    "--image-id": "--image-id needs ec2:CreateLaunchTemplateVersion, which the state machine "
                  "does not call (it uses autoscaling, elasticloadbalancing, s3 and cloudwatch "
                  "only): create the version first (aws ec2 create-launch-template-version "
                  "--source-version N --launch-template-data ImageId=AMI ...) and pass "
                  "--launch-template-version with its number",
}


def unsupported_reason(flag: str) -> str:
    """Why `sfn start` (and the machine's input check) refuses an UNSUPPORTED flag."""
    return _WHY.get(flag, f"{flag} is not supported by the Step Functions engine yet "
                          "(use `abfsm deploy`)")


def compile_document(spec: Spec) -> str:
    return to_json(compile_spec(spec))


def check_start(settings: Settings, state_machine_arn: str) -> None:
    """Everything `sfn start` refuses before its first AWS call."""
    if settings.dry_run:
        raise UsageError("--dry-run: an execution changes AWS; for the plan run "
                         "`abfsm deploy --dry-run` with the same flags")
    if not STATE_MACHINE_ARN.match(state_machine_arn):
        raise UsageError(f"--state-machine-arn {state_machine_arn!r} is not a state machine "
                         "ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)")
    if not settings.lock_bucket_name:
        raise UsageError("--lock-bucket-name is required: an execution has no local lock")
    for flag, used in UNSUPPORTED:
        if used(settings):
            raise UsageError(unsupported_reason(flag))


def check_notify(flags: list[str], wait: bool) -> None:
    """--notify is sent by the process that follows the execution: `sfn start` needs --wait
    (ABFSM_NOTIFY alone is used when following, and ignored without it)."""
    if flags and not wait:
        raise UsageError("--notify needs --wait: notifications come from the process that "
                         "follows the execution, and without --wait nothing follows it (or "
                         "follow it with `abfsm sfn watch --execution-arn ARN --notify ...`)")


def check_execution_arn(execution_arn: str) -> None:
    if not EXECUTION_ARN.match(execution_arn):
        raise UsageError(f"--execution-arn {execution_arn!r} is not an execution ARN "
                         "(arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME)")


def check_deploy(name: str, role_arn: str) -> None:
    if not NAME.match(name):
        raise UsageError(f"--name {name!r}: 1-80 letters, digits, '-' or '_'")
    if not ROLE_ARN.match(role_arn):
        raise UsageError(f"--role-arn {role_arn!r} is not an IAM role ARN "
                         "(arn:aws:iam::ACCOUNT:role/NAME)")


def execution_input(settings: Settings, run_id: str, started_at: str) -> dict[str, Any]:
    """The execution's input document: the flags, the run's id and the waits' limits (the
    machine fills what another starter leaves out: compiler.input_states), and with
    --bake-time `limits.bake`: it rounded up to whole seconds (a Wait takes no fractions;
    without it, the machine rounds settings.bake_time to the nearest second)."""
    limits: dict[str, Any] = wait_limits(settings)
    if settings.bake_time > 0:
        limits["bake"] = math.ceil(settings.bake_time)
    return {"run_id": run_id, "started_at": started_at, "settings": settings.to_dict(),
            "limits": limits}


def deploy_machine(services: Services, spec: Spec, name: str, role_arn: str) -> tuple[str, bool]:
    return services.stepfunctions.create_or_update(name, compile_document(spec), role_arn)


def start(services: Services, settings: Settings, state_machine_arn: str,
          clock: Clock) -> tuple[str, str]:
    """Start one execution named by a new run_id: (run_id, execution ARN)."""
    run_id = new_run_id(clock)
    document = execution_input(settings, run_id, utc_iso(clock.now()))
    return run_id, services.stepfunctions.start(state_machine_arn, run_id, json.dumps(document))


# What `sfn start --resume` takes from its flags (cli.py refuses the others); every other
# setting is the run's.
RESUME_OWN = ("environment", "lock_bucket_name", "update_timeout", "health_check_timeout",
              "region", "endpoint_url", "profile", "log_format", "verbose", "spec")
RESUME_NAMES = 100  # RUN_ID-resume-N tried for this many N past the last one recorded


def check_resume(settings: Settings, state_machine_arn: str, spec: Spec,
                 from_state: str | None) -> None:
    """Everything `sfn start --resume` refuses before its first AWS call (UsageError)."""
    if not STATE_MACHINE_ARN.match(state_machine_arn):
        raise UsageError(f"--state-machine-arn {state_machine_arn!r} is not a state machine "
                         "ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)")
    if not settings.lock_bucket_name:
        raise UsageError("--lock-bucket-name is required: the run's record is in its lock")
    if from_state is not None:
        check_from_state(spec, from_state)


def check_from_state(spec: Spec, state: str) -> None:
    able = resumable(spec)
    if state not in spec.states:
        raise UsageError(f"--from-state {state}: not a state of {spec.path} "
                         f"(states: {', '.join(spec.working_states)})")
    if state not in able:
        what = "a final state" if spec.is_final(state) else "the initial state (the lock is held)"
        raise UsageError(f"--from-state {state}: {what}; an execution re-enters one of "
                         f"{', '.join(able)}")


def start_resume(services: Services, settings: Settings, state_machine_arn: str, clock: Clock,
                 spec: Spec, *, from_state: str | None = None,
                 overrides: dict[str, Any] | None = None) -> tuple[str, str]:
    """Start the execution that carries on the failed run in ENV's lock: (run_id, its ARN).

    Refused (exit 3, nothing changed) without a lock, for a record abfsm did not write or
    one of the local engine, and while the run's execution is still RUNNING; a state the
    saved plan cannot support is a UsageError (exit 2), as for `abfsm resume`."""
    from abfsm.runner import left_state, make_lock

    lock = make_lock(settings, services, clock)
    holder = lock.holder()
    if holder is None:
        raise Refused(f"nothing to resume for {settings.environment}: no lock at {lock.where} "
                      "(the environment is free; start a new `abfsm sfn start`)")
    saved = holder.record
    if saved is None:
        raise Refused(f"{lock.where} holds {holder.describe(clock)}; nothing of abfsm's to resume")
    if saved.engine != "stepfunctions":
        raise Refused(f"run {saved.run_id} is run by `abfsm deploy` (engine {saved.engine}), "
                      "not by an execution: carry it on with `abfsm resume`")
    if not saved.execution_arn:
        raise Refused(f"run {saved.run_id}'s record names no execution; nothing to carry on")
    previous = services.stepfunctions.describe(saved.execution_arn)
    if previous.status == "RUNNING":
        raise Refused(f"run {saved.run_id}'s execution {saved.execution_arn} is still RUNNING; "
                      "`abfsm sfn start --resume` carries on only an execution that ended "
                      "(stop it in Step Functions first)")
    state = from_state or left_state(saved, spec)
    check_from_state(spec, state)
    context = dict(saved.context)
    count = context.pop("count", None) or {}
    why_not = _action_of(spec, state).cannot_resume(_plan_for_checks(context, count))
    if why_not:
        able = [s for s in resumable(spec)
                if not _action_of(spec, s).cannot_resume(_plan_for_checks(context, count))]
        raise UsageError(f"cannot resume run {saved.run_id} from {state}: {why_not}; "
                         f"it can resume from: {', '.join(able) or 'nothing'}")
    run_settings = Settings.from_dict(saved.settings)
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(run_settings, key, value)
    document = resume_input(saved, run_settings, state, holder.etag, context, count)
    text = json.dumps(document)
    first = _resume_number(saved)
    for n in range(first, first + RESUME_NAMES):
        arn = services.stepfunctions.start_unless_taken(state_machine_arn,
                                                        f"{saved.run_id}-resume-{n}", text)
        if arn is not None:
            return saved.run_id, arn
    raise Refused(f"run {saved.run_id}: executions {saved.run_id}-resume-{first} to "
                  f"-{first + RESUME_NAMES - 1} all exist already")


def resume_input(saved: RunRecord, settings: Settings, state: str, etag: str,
                 plan: dict[str, Any], count: dict[str, Any]) -> dict[str, Any]:
    """The input of a resuming execution: the run's id, start, settings (with the timeouts
    given now), plan, count and history, and what to re-enter with which lock ETag."""
    document = execution_input(settings, saved.run_id, saved.started_at)
    text = "".join(json.dumps(h, separators=(",", ":")) + "," for h in saved.history)
    document |= {"plan": plan, "count": count,
                 "hist": {"text": text, "list": saved.history, "ctx": {"count": count}},
                 "resume": {"state": state, "from": saved.state, "etag": etag}}
    return document


def _resume_number(saved: RunRecord) -> int:
    """N of the next `RUN_ID-resume-N`: one past the execution the record names."""
    name = (saved.execution_arn or "").rsplit(":", 1)[-1]
    found = re.fullmatch(re.escape(saved.run_id) + r"-resume-(\d+)", name)
    return int(found.group(1)) + 1 if found else 1


def _plan_for_checks(context: dict[str, Any], count: dict[str, Any]) -> Plan:
    """The saved plan as the actions' cannot_resume() reads it (the steps from the count)."""
    plan = Plan.from_dict(context)
    n, step = int(count.get("n") or 0), int(count.get("step") or 0)
    if n and step:
        plan.target_count = n
        plan.steps = list(range(step, n, step)) + [n]
    return plan


def _action_of(spec: Spec, state: str) -> Any:
    from abfsm.actions import ACTIONS

    return ACTIONS[spec.states[state].action or ""]


def definition_problem(services: Services, execution_arn: str, spec: Spec) -> str | None:
    """None when the execution runs `spec`'s compilation; else one line saying it does not."""
    definition = services.stepfunctions.definition_for(execution_arn)
    try:
        doc = json.loads(definition)
    except ValueError:
        doc = {}
    if isinstance(doc, dict) and doc == compile_spec(spec):
        return None
    comment = doc.get("Comment") if isinstance(doc, dict) else None
    return (f"the execution's state machine is not the compilation of {spec.path} by this "
            f"abfsm (its Comment: {comment or 'none'}); its states and triggers are read "
            f"with {spec.path} (pass --spec FILE for the spec it was compiled from)")


def watch(services: Services, execution_arn: str, spec: Spec, clock: Clock, *,
          render_next: RenderNext = plain_next, connection: Mapping[str, Any] | None = None,
          interval: float | None = None,
          pause_at_approval: bool = False) -> tuple[HistoryMapper, str | None]:
    """Follow the execution to its end, logging each new history event's log events once
    (abfsm/sfn/history.py). Each poll reads the history after the last event seen; between
    polls, the clock's sleep (a stop request raises Interrupted there).

    (mapper, None) at the end; with `pause_at_approval`, (mapper, STATE) as soon as the
    execution waits for a task token in STATE (an approval), the execution still running.
    `interval`: seconds between polls (default FOLLOW_INTERVAL_S, read at the call)."""
    import structlog

    from abfsm.log import bind

    log = structlog.get_logger("abfsm")
    mapper = HistoryMapper(spec, execution_arn, render_next=render_next,
                           connection=dict(connection or {}))
    tokens = TokenWait()
    after = 0
    while True:
        events = services.stepfunctions.history(execution_arn, after)
        if events:
            after = events[-1].id
        for event in mapper.feed(events):
            if event["event"] == "run.started":
                bind(run_id=mapper.run_id, env=mapper.env)
            keys = {k: v for k, v in event.items() if k not in ("event", "level")}
            getattr(log, event["level"])(event["event"], **keys)
        waiting = tokens.feed(events)
        if mapper.ended:
            return mapper, None
        if pause_at_approval and waiting:
            return mapper, mapper.state or waiting  # the spec state (its task: STATE.act)
        clock.sleep(FOLLOW_INTERVAL_S if interval is None else interval)


class TokenWait:
    """Which state waits for a task token (a `.waitForTaskToken` task whose call was
    submitted and that has not ended yet), from the history events fed so far."""

    _ENDED = frozenset({"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskStateExited",
                        "TaskSubmitFailed", "TaskStartFailed"})

    def __init__(self) -> None:
        self.entered: str | None = None
        self.waiting: str | None = None

    def feed(self, events: Sequence[HistoryEvent]) -> str | None:
        for event in events:
            if event.type.endswith("StateEntered"):
                self.entered = event.name
            elif event.type == "TaskSubmitted" and (event.resource or "").endswith(
                    ".waitForTaskToken"):
                self.waiting = self.entered
            elif event.type in self._ENDED:
                self.waiting = None
        return self.waiting


def paused_steps() -> list[NextStep]:
    """What an operator can do while an execution waits at an approval (the execution
    carries on by itself once decided: no resume)."""
    return [NextStep("approve", "decide"), NextStep("reject", "or", note="add --reason TEXT"),
            NextStep("status", "or inspect it")]


def read(services: Services, execution_arn: str, spec: Spec) -> HistoryMapper:
    """The execution's whole history so far, mapped (what `sfn status` reports)."""
    mapper = HistoryMapper(spec, execution_arn)
    mapper.feed(services.stepfunctions.history(execution_arn))
    return mapper


def outcome(execution: Execution) -> None:
    """Nothing for SUCCEEDED; else the error the execution ended with (its exit code)."""
    if execution.status == "SUCCEEDED":
        return
    cause = execution.cause or execution.status
    if execution.status != "FAILED":
        raise StateFailed(f"execution {execution.status}: {cause}")
    if execution.error == ERROR_REFUSED:
        raise Refused(cause)
    if execution.error == ERROR_INPUT:
        raise UsageError(cause)
    if execution.error and execution.error.startswith("abfsm."):
        raise StateFailed(cause)
    raise AbfsmError(f"{execution.error}: {cause}")


def role_policy(spec: Spec, lock_bucket: str | None) -> dict[str, Any]:
    """The IAM policy the execution role needs: each aws-sdk action the machine calls."""
    from abfsm.iam import iam_action

    doc = compile_spec(spec)
    bucket = lock_bucket or "*"
    s3 = sorted({iam_action("s3", _pascal(api)) for svc, api in used_integrations(doc)
                 if svc == "s3"})
    other = sorted({iam_action(_BOTO.get(svc, svc), _pascal(api))
                    for svc, api in used_integrations(doc) if svc not in ("s3", "cloudwatch")})
    alarms = sorted({iam_action(svc, _pascal(api)) for svc, api in used_integrations(doc)
                     if svc == "cloudwatch"})
    statements: list[dict[str, Any]] = []
    if other:
        statements.append({"Sid": "AbfsmAsgsAndLoadBalancers", "Effect": "Allow", "Action": other,
                           "Resource": "*"})
    if alarms:  # "*": DescribeAlarms answers composite alarms only to an unscoped grant
        statements.append({"Sid": "AbfsmAlarms", "Effect": "Allow", "Action": alarms,
                           "Resource": "*"})
    if s3:
        statements.append({"Sid": "AbfsmLock", "Effect": "Allow", "Action": s3,
                           "Resource": f"arn:aws:s3:::{bucket}/*"})
    return {"Version": "2012-10-17", "Statement": statements}


_BOTO = {"elasticloadbalancing": "elb", "elasticloadbalancingv2": "elbv2"}


def _pascal(api: str) -> str:
    return api[:1].upper() + api[1:]
