"""The Step Functions engine's commands: compile, deploy the state machine, start and follow.

Everything a user hands in is checked before the first AWS call (UsageError, exit 2): the
deploy flags as `abfsm deploy` checks them, plus what an execution needs (--lock-bucket-name,
a well-formed state machine ARN) and what this preview does not compile yet (UNSUPPORTED).
An execution that ends FAILED raises the error its Fail state names (abfsm.Refused → exit 3,
abfsm.StateFailed / abfsm.RolledBack → exit 1, abfsm.InvalidInput: an input the machine
refused before any AWS call → exit 2), with the cause as the message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from abfsm.aws import Services
from abfsm.aws.stepfunctions import Execution
from abfsm.clock import Clock, utc_iso
from abfsm.context import Settings
from abfsm.errors import AbfsmError, Refused, StateFailed, UsageError
from abfsm.record import new_run_id
from abfsm.sfn.compiler import (
    ERROR_INPUT, ERROR_REFUSED, compile_spec, to_json, used_integrations, wait_limits,
)
from abfsm.spec import Spec

STATE_MACHINE_ARN = re.compile(
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
FOLLOW_INTERVAL_S = 2.0

# What this preview does not compile yet: refused by `sfn start` (exit 2, no AWS call).
UNSUPPORTED: tuple[tuple[str, Callable[[Settings], bool]], ...] = (
    ("--single-asg", lambda s: s.single_asg),
    ("--clean-up", lambda s: s.clean_up),
    ("--wait-for-scale-down", lambda s: s.wait_for_scale_down),
    ("--pause-at-approval", lambda s: s.pause_at_approval),
    ("--notify", lambda s: bool(s.notify)),
    ("--resume-processes", lambda s: s.resume_processes),
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
    limits: dict[str, int] = wait_limits(settings)
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


def follow(services: Services, execution_arn: str, clock: Clock,
           interval: float = FOLLOW_INTERVAL_S) -> Execution:
    """Poll the execution until it is no longer RUNNING."""
    while True:
        execution = services.stepfunctions.describe(execution_arn)
        if execution.status != "RUNNING":
            return execution
        clock.sleep(interval)


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
