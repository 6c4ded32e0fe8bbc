"""The command line: parse and validate flags, call the runner, print once, choose the exit code.

This is the only module that prints a final message or picks an exit code. It imports
nothing heavy at start-up: `abfsm --help` and `abfsm graph` never import boto3.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO, TypeVar, cast

from abfsm import __version__
from abfsm.context import Settings
from abfsm.errors import EXIT_PAUSED, EXIT_USAGE, AbfsmError, UsageError

COMMANDS = ("deploy", "resume", "status", "unlock", "approve", "reject", "graph", "demo", "iam-policy",
            "sfn")
SFN_COMMANDS = ("compile", "deploy", "role-policy", "start", "status", "watch", "input-schema")
# An environment name must be usable as it is in every place it goes: the ASG names ENV-a /
# ENV-b (no colon allowed there), the S3 key ENV.lock with ENV/runs/ under it, and a local
# file name (no slash). So: a letter or digit, then letters, digits, dot, underscore, hyphen.
_ENV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# ASG names hold 255 characters (ENV-a: 253); local files 255 bytes, and the lock's temporary
# file is `.ENV.<8 random>.tmp`: 200 leaves room for both.
ENV_MAX = 200
# S3's bucket naming rules (general purpose buckets).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
COMMANDS_IAM = ("deploy", "resume", "status", "unlock", "approve", "all")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming what was wrong (exit 2)."""

    def error(self, message: str) -> NoReturn:
        _say(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _say(text: str, stream: TextIO | None = None) -> None:
    """Write to stderr (or `stream`); a closed or full stream is skipped, never an error."""
    from abfsm.log import write_safely

    write_safely(stream or sys.stderr, text)


_Check = TypeVar("_Check", bound=Callable[..., Any])


def _json_schema(**keywords: Any) -> Callable[[_Check], _Check]:
    """A flag type's checks as JSON Schema keywords (the `sfn input-schema` document reads
    them from each flag's `type`, abfsm/sfn/input_schema.py)."""
    def mark(check: _Check) -> _Check:
        cast(Any, check).json_schema = keywords
        return check
    return mark


@_json_schema(minimum=1)
def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@_json_schema(exclusiveMinimum=0)
def _seconds(text: str) -> float:
    try:
        value = float(text.rstrip("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


@_json_schema(minimum=0)
def _seconds_or_zero(text: str) -> float:
    if text.rstrip("s") in ("0", "0.0"):
        return 0.0
    return _seconds(text)


@_json_schema(minLength=1, maxLength=255)
def _alarm_name(text: str) -> str:
    if not text.strip() or len(text) > 255:
        raise argparse.ArgumentTypeError(f"must be a CloudWatch alarm name (1-255 characters), got {text!r}")
    return text


@_json_schema(pattern=f"^(?:{_ENV_RE.pattern})$", maxLength=ENV_MAX)
def _environment(text: str) -> str:
    if len(text) > ENV_MAX:
        raise argparse.ArgumentTypeError(
            f"is {len(text)} characters long; an environment name has at most {ENV_MAX}")
    if not _ENV_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a usable environment name: a letter or digit, then letters, "
            "digits, '.', '_' or '-' (it names the ASGs ENV-a/ENV-b, the S3 key ENV.lock and "
            "the local lock file)")
    return text


@_json_schema(pattern=f"^(?:{_BUCKET_RE.pattern})$", minLength=3, maxLength=63)
def _bucket(text: str) -> str:
    """S3's bucket naming rules, checked before any call."""
    problem = bucket_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid S3 bucket name: {problem}")
    return text


def bucket_name_problem(name: str) -> str:
    """What breaks S3's naming rules for general purpose buckets in `name`, or ""."""
    if not 3 <= len(name) <= 63:
        return f"it must be 3 to 63 characters long, not {len(name)}"
    if not _BUCKET_RE.fullmatch(name):
        return ("only lowercase letters, digits, '.' and '-', beginning and ending with a "
                "letter or digit")
    if ".." in name:
        return "two adjacent periods"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return "it is formatted as an IP address"
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"it must not begin with {prefix!r}"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"it must not end with {suffix!r}"
    return ""


def _state_dir(text: str) -> str:
    """A directory, or a path where one can be made: not a regular file (or under one)."""
    from pathlib import Path

    path = Path(text)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is not a directory" if part == path else f"is under {str(part)!r}, a file"
                raise argparse.ArgumentTypeError(f"{text!r} {what}")
            break
    return text


def _environment_pattern(text: str) -> str:
    """An environment name, or a pattern with the wildcards * and ? (iam-policy)."""
    if len(text) > ENV_MAX or not _ENV_RE.fullmatch(text.replace("*", "x").replace("?", "x")):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a usable environment name or pattern (a letter, digit or wildcard, "
            "then letters, digits, '.', '_', '-' and the wildcards * ?)")
    return text


def _account_id(text: str) -> str:
    if not re.fullmatch(r"\d{12}", text):
        raise argparse.ArgumentTypeError(f"must be a 12-digit AWS account id, got {text!r}")
    return text


@_json_schema(pattern="^arn:.*:targetgroup/")
def _target_group(text: str) -> str:
    if not text.startswith("arn:") or ":targetgroup/" not in text:
        raise argparse.ArgumentTypeError(f"must be a target group ARN "
                                         f"(arn:aws:elasticloadbalancing:...:targetgroup/...), got {text!r}")
    return text


_AMI_RE = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")


@_json_schema(pattern=r"^(?:\$Latest|\$Default|0*[1-9][0-9]*)$")
def _template_version(text: str) -> str:
    if text in ("$Latest", "$Default") or (text.isdigit() and int(text) >= 1):
        return str(int(text)) if text.isdigit() else text
    raise argparse.ArgumentTypeError(f"must be a version number, $Latest or $Default, got {text!r}")


@_json_schema(pattern=_AMI_RE.pattern)
def _image_id(text: str) -> str:
    if not _AMI_RE.match(text):
        raise argparse.ArgumentTypeError(f"must be an AMI id (ami- and 8 or 17 hex digits), "
                                         f"got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="abfsm", description=(
        "Blue/green (A/B) deployments of AWS Auto Scaling Groups behind load balancers, "
        "run as an explicit state machine (states.yaml)."),
        epilog="Exit codes: 0 success · 1 a state failed · 2 usage or spec error · "
               "3 refused by a precondition · 4 paused at a checkpoint (approval) · 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"abfsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    deploy = sub.add_parser("deploy", help="run an A/B deployment (or --zero, --single-asg, --dry-run)",
                            description="Run an A/B deployment of ENV-a / ENV-b.")
    _env(deploy)
    _deploy_flags(deploy)

    iam = sub.add_parser("iam-policy", help="print the least-privilege IAM policy of a deploy "
                                            "configuration (no AWS call)",
                         description="Print the IAM policy document the given deploy flags (and "
                                     "--command) need: exactly the actions it can call, scoped "
                                     "where AWS allows. Makes no AWS call.")
    iam.add_argument("--environment", required=True, type=_environment_pattern, metavar="ENV",
                     help="the environment, or a pattern (qa-*) for one policy covering several")
    _deploy_flags(iam)
    iam.add_argument("--command", dest="iam_command", choices=COMMANDS_IAM, default="deploy",
                     help="which abfsm command the policy is for (default: deploy; all: every one)")
    iam.add_argument("--format", choices=("json", "annotated"), default="json",
                     help="json: the document; annotated: with // comments on who needs what, why")
    iam.add_argument("--account-id", type=_account_id, metavar="ID",
                     help="the AWS account in the ARNs (default: *)")

    resume = sub.add_parser("resume", help="carry on a failed or interrupted run from a named state",
                            description="Re-enter a run's state with its saved context, same run_id and lock.")
    _env(resume)
    resume.add_argument("--from", dest="from_state", metavar="STATE",
                        help="state to re-enter (default: the state the run failed or stopped in)")
    resume.add_argument("--force", action="store_true",
                        help="resume even though the run looks alive (heartbeat not stale)")
    _store(resume)
    _logging(resume)
    _notify(resume)
    _conn(resume)
    resume.add_argument("--spec", metavar="FILE",
                        help="state machine spec (default: the one the run started with; a "
                             "spec changed since is refused unless given here)")
    resume.add_argument("--update-timeout", type=_seconds, default=None, metavar="S",
                        help="seconds between polls from now on (default: the run's)")
    resume.add_argument("--health-check-timeout", type=_seconds, default=None, metavar="S",
                        help="seconds each wait may take from now on (default: the run's)")

    status = sub.add_parser("status", help="show the current run (or that the environment is free) and recent runs")
    _env(status)
    status.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people, or one JSON document (default: text)")
    _store(status)
    _conn(status)

    unlock = sub.add_parser("unlock", help="remove an environment lock deliberately")
    _env(unlock)
    who = unlock.add_mutually_exclusive_group(required=True)
    who.add_argument("--run-id", metavar="ID", help="remove the lock only if this run holds it")
    who.add_argument("--force", action="store_true", help="remove whatever holds the lock (a manual freeze too)")
    _store(unlock)
    _conn(unlock)

    for verb, outcome in (("approve", "approved"), ("reject", "rejected")):
        decide = sub.add_parser(verb, help=f"{verb} the run waiting (or paused) at an approval state",
                                description=f"Record `{outcome}` for the approval state the run "
                                            "holding ENV's lock waits or paused at (who, when, "
                                            "reason go into its history). A waiting run takes "
                                            "it at its next poll; a paused one at `abfsm resume`.")
        _env(decide)
        decide.add_argument("--reason", metavar="TEXT", help="why (recorded in the run's history)")
        decide.add_argument("--run-id", metavar="ID",
                            help=f"{verb} only if this run holds the lock (exit 3 otherwise)")
        _store(decide)
        _conn(decide)

    graph = sub.add_parser("graph", help="draw the state machine (mermaid, dot, png, svg)")
    graph.add_argument("--spec", metavar="FILE", help="state machine spec (default: packaged)")
    graph.add_argument("--format", choices=("mermaid", "dot", "png", "svg"), default="mermaid",
                       help="mermaid stateDiagram-v2 or Graphviz dot text; png/svg images need "
                            "the graph extra and --output or a redirected stdout (default: mermaid)")
    graph.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    graph.add_argument("--environment", type=_environment, metavar="ENV",
                       help="mark where ENV's current or last run is and the path it took")
    _store(graph)
    _conn(graph)

    demo = sub.add_parser("demo", help="a full A/B deployment against an embedded AWS emulator (no credentials)")
    demo.add_argument("--instance-count-step", type=_count, default=1, metavar="N",
                      help="step size of the demo deployment (default: 1)")
    demo.add_argument("--fast", action="store_true",
                      help="moto's instant world: no boot, health-check or draining time (runs in "
                           "under a second)")
    _logging(demo)
    _sfn_parser(sub)
    return parser


def _sfn_parser(sub: Any) -> None:
    """`abfsm sfn compile | deploy | role-policy | start | status | watch` (the Step Functions
    engine, preview)."""
    sfn = sub.add_parser("sfn", help="the same machine on AWS Step Functions (preview)",
                         description="Compile the spec to Amazon States Language, create the "
                                     "state machine, start and follow executions.")
    verbs = sfn.add_subparsers(dest="sfn_command", metavar="SFN_COMMAND", parser_class=_Parser,
                               required=True)
    comp = verbs.add_parser("compile", help="print the spec as Amazon States Language")
    comp.add_argument("--spec", metavar="FILE", help="state machine spec (default: the packaged states.yaml)")
    comp.add_argument("--output", metavar="FILE", help="write the ASL here (default: stdout)")
    dep = verbs.add_parser("deploy", help="create or update the state machine; prints its ARN")
    dep.add_argument("--name", required=True, help="the state machine's name")
    dep.add_argument("--role-arn", required=True, metavar="ARN", help="its execution role")
    dep.add_argument("--spec", metavar="FILE", help="state machine spec (default: the packaged states.yaml)")
    _conn(dep)
    pol = verbs.add_parser("role-policy", help="print the IAM policy the execution role needs")
    pol.add_argument("--spec", metavar="FILE", help="state machine spec (default: the packaged states.yaml)")
    pol.add_argument("--lock-bucket-name", metavar="BUCKET", type=_bucket,
                     help="scope the S3 statement to this bucket (default: any)")
    verbs.add_parser("input-schema", help="print the JSON Schema of an execution's input "
                                          "(generated from the flags of `sfn start`)")
    start = verbs.add_parser("start", help="start an execution with the deploy flags as input")
    start.add_argument("--state-machine-arn", required=True, metavar="ARN",
                       help="the state machine `abfsm sfn deploy` printed")
    start.add_argument("--wait", action="store_true",
                       help="follow the execution to its end, logging it as `abfsm deploy` "
                            "does, and exit as `abfsm deploy` would (what `sfn watch` does)")
    start.add_argument("--resume", action="store_true",
                       help="carry on the failed run in ENV's lock: a new execution RUN_ID-resume-N "
                            "re-enters the state it failed in with the saved plan (only the "
                            "timeouts may be given; every other setting is the run's)")
    start.add_argument("--from-state", metavar="STATE",
                       help="with --resume: the state to re-enter (default: the one it failed in)")
    _env(start)
    _deploy_flags(start)
    # None: not given (--resume keeps the run's timeouts); settings_from() fills the defaults.
    start.set_defaults(update_timeout=None, health_check_timeout=None)
    status = verbs.add_parser("status", help="where an execution is: its state, status, path "
                                             "so far and error (one screen)")
    watch = verbs.add_parser("watch", help="follow an execution to its end as abfsm log lines; "
                                           "exit as `abfsm deploy` would")
    for p in (status, watch):
        p.add_argument("--execution-arn", required=True, metavar="ARN",
                       help="the execution `abfsm sfn start` printed")
        p.add_argument("--spec", metavar="FILE",
                       help="the spec the state machine was compiled from (default: the "
                            "packaged states.yaml)")
    status.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people, or one JSON document (default: text)")
    _conn(status)
    watch.add_argument("--pause-at-approval", action="store_true",
                       help="stop following with exit 4 once the execution waits at an "
                            "approval (it goes on waiting in AWS); prints the approve / reject "
                            "commands")
    _logging(watch)
    _notify(watch)
    _conn(watch)


def _deploy_flags(p: argparse.ArgumentParser) -> None:
    """The flags of `abfsm deploy` (also taken by `abfsm iam-policy`)."""
    g = p.add_argument_group("what to deploy (the original deploy.py flags)")
    g.add_argument("--elb-name", action="append", default=[], metavar="NAME",
                   help="classic ELB the ASGs are linked to (repeatable; default: discovered "
                        "from the target ASG's attachments)")
    g.add_argument("--target-group-arn", action="append", default=[], type=_target_group,
                   metavar="ARN", help="ALB/NLB target group to wait for (repeatable)")
    g.add_argument("--no-elb-check", action="store_true",
                   help="do not wait for any load balancer (e.g. a jMeter ASG)")
    g.add_argument("--single-asg", action="store_true",
                   help="refresh the one ASG named ENV (no -a/-b): drain it if populated, then fill it")
    g.add_argument("--dry-run", action="store_true",
                   help="read only: print the plan and the calls it would make; change nothing")
    g.add_argument("--zero", action="store_true", help="zero the currently active ASG")
    g.add_argument("--instance-count", type=_count, default=None, metavar="N",
                   help="instances in the new ASG (default: 8)")
    g.add_argument("--instance-count-match", action="store_true",
                   help="match the new ASG's count to the active ASG's desired capacity")
    g.add_argument("--instance-count-step", type=_count, default=None, metavar="N",
                   help="scale up N instances at a time, waiting for each step (default: all at once)")
    g.add_argument("--update-timeout", type=_seconds, default=30.0, metavar="S",
                   help="seconds between polls while waiting (default: 30)")
    g.add_argument("--health-check-timeout", type=_seconds, default=600.0, metavar="S",
                   help="seconds each wait may take before the run fails (default: 600)")
    g.add_argument("--clean-up", action="store_true",
                   help="if both ASGs have instances, zero the one serving fewer healthy "
                        "instances first (dangerous; a tie is refused)")
    g.add_argument("--rollback-on-failure", action="store_true",
                   help="if scaling or a wait fails, scale the new ASG back to 0 and release the lock")
    g.add_argument("--wait-for-scale-down", action="store_true",
                   help="wait until the old ASG is empty and its targets deregistered")
    v = p.add_argument_group("what the new ASG launches")
    v.add_argument("--launch-template-version", type=_template_version, metavar="V",
                   help="set the new ASG's launch template version before scaling it: a number, "
                        "$Latest or $Default (resolved to its number in inspect)")
    v.add_argument("--image-id", type=_image_id, metavar="AMI",
                   help="create a version of the new ASG's launch template with this image "
                        "(a copy of the version it uses now, or of --launch-template-version) "
                        "and set it")
    v.add_argument("--resume-processes", action="store_true",
                   help="resume the suspended Launch/Terminate processes that would stall the "
                        "run, and suspend them again at the end (default: refuse, exit 3)")
    gates = p.add_argument_group("gates (see the README's Gates section)")
    gates.add_argument("--bake-time", type=_seconds_or_zero, default=0.0, metavar="S",
                       help="after wait-elb, watch the new instances (and alarms) for S seconds "
                            "before draining the old ASG (default: 0, no bake)")
    gates.add_argument("--alarm", action="append", default=[], type=_alarm_name, metavar="NAME",
                       help="CloudWatch alarm that must not go into ALARM while the new instances "
                            "come up and bake (repeatable); checked in inspect (exit 3 if missing "
                            "or already in ALARM)")
    gates.add_argument("--alarm-prefix", type=_alarm_name, metavar="PREFIX",
                       help="watch every CloudWatch alarm whose name starts with PREFIX, like --alarm")
    gates.add_argument("--pause-at-approval", action="store_true",
                       help="at an approval state, exit at once with code 4 (lock held) instead "
                            "of waiting; `abfsm approve` then `abfsm resume` carry on")
    _store(p)
    _logging(p)
    _notify(p)
    _conn(p)
    p.add_argument("--spec", metavar="FILE", help="state machine spec (default: the packaged states.yaml)")


def _env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--environment", required=True, type=_environment, metavar="ENV",
                   help="the environment: ASGs ENV-a and ENV-b (or ENV with --single-asg)")


def _store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-bucket-name", metavar="BUCKET", type=_bucket,
                   help="S3 bucket holding ENV.lock and the run records (default: local --state-dir)")
    p.add_argument("--state-dir", default=".abfsm", metavar="DIR", type=_state_dir,
                   help="local lock and run records when no bucket is given (default: .abfsm)")


def _logging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=("auto", "console", "json"), default="auto",
                   help="console on a terminal, JSON lines otherwise (default: auto)")
    p.add_argument("--verbose", action="store_true", help="per-poll detail and every AWS call")


def _notify(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("notifications (never fail or stall the run)")
    g.add_argument("--notify", action="append", default=[], metavar="SINK",
                   help="also tell SINK (repeatable; adds to ABFSM_NOTIFY): slack:URL, webhook:URL, "
                        "sns:TOPIC_ARN, events:BUS, logs:GROUP[:STREAM], syslog:udp://HOST:PORT, "
                        "syslog:tcp://HOST:PORT, syslog:unix:///dev/log")
    g.add_argument("--notify-on", metavar="EVENTS",
                   help="comma-separated log events for slack/webhook/sns/events sinks "
                        "(default: run.started,state.failed,run.finished)")
    g.add_argument("--notify-create", action="store_true",
                   help="create a logs: sink's log group if it is missing")


def _notify_specs(args: argparse.Namespace) -> list[Any]:
    """The --notify sinks (after ABFSM_NOTIFY's), checked; [] for commands without them."""
    if not hasattr(args, "notify"):
        return []
    from abfsm.notify import parse_sinks

    return parse_sinks(args.notify, os.environ.get("ABFSM_NOTIFY"))


def _conn(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", help="AWS region (default: boto3's chain, e.g. AWS_REGION)")
    p.add_argument("--endpoint-url", help="AWS endpoint override (e.g. an emulator)")
    p.add_argument("--profile", help="AWS profile")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags, with the cross-flag checks argparse cannot do."""
    def get(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    if get("instance_count") is not None and get("instance_count_match"):
        raise UsageError("--instance-count and --instance-count-match exclude each other")
    if get("no_elb_check") and (get("elb_name") or get("target_group_arn")):
        raise UsageError("--no-elb-check excludes --elb-name / --target-group-arn")
    count, step = get("instance_count"), get("instance_count_step")
    if count is not None and step is not None and step > count:
        raise UsageError(f"--instance-count-step {step} is larger than --instance-count {count}")
    if get("zero") and (get("clean_up") or get("instance_count_match")):
        raise UsageError("--zero takes no --clean-up / --instance-count-match")
    if get("zero") and (get("launch_template_version") or get("image_id")):
        raise UsageError("--zero deploys nothing: it takes no --launch-template-version / --image-id")
    if len(set(get("alarm", []) or [])) > 100:
        raise UsageError("--alarm: at most 100 alarms (one DescribeAlarms call reads them all)")
    sinks = _notify_specs(args)
    notify_on: list[str] = []
    if hasattr(args, "notify"):
        from abfsm.log_schema import EVENTS
        from abfsm.notify import parse_events

        notify_on = parse_events(get("notify_on"), frozenset(EVENTS))
    return Settings(
        environment=args.environment,
        elb_names=list(dict.fromkeys(get("elb_name", []) or [])),
        target_group_arns=list(dict.fromkeys(get("target_group_arn", []) or [])),
        no_elb_check=bool(get("no_elb_check")),
        lock_bucket_name=get("lock_bucket_name"),
        single_asg=bool(get("single_asg")),
        dry_run=bool(get("dry_run")),
        zero=bool(get("zero")),
        instance_count=count if count is not None else 8,
        instance_count_match=bool(get("instance_count_match")),
        instance_count_step=step,
        update_timeout=get("update_timeout") or 30.0,  # resume: None keeps the run's
        health_check_timeout=get("health_check_timeout") or 600.0,
        clean_up=bool(get("clean_up")),
        rollback_on_failure=bool(get("rollback_on_failure")),
        wait_for_scale_down=bool(get("wait_for_scale_down")),
        launch_template_version=get("launch_template_version"),
        image_id=get("image_id"),
        resume_processes=bool(get("resume_processes")),
        verbose=bool(get("verbose")),
        log_format=get("log_format", "auto"),
        state_dir=get("state_dir", ".abfsm"),
        spec=get("spec"),
        bake_time=get("bake_time", 0.0) or 0.0,
        alarms=list(dict.fromkeys(get("alarm", []) or [])),
        alarm_prefix=get("alarm_prefix"),
        pause_at_approval=bool(get("pause_at_approval")),
        region=get("region"),
        endpoint_url=get("endpoint_url"),
        profile=get("profile"),
        notify=[s.redacted for s in sinks],  # never the targets themselves: they can be secrets
        notify_on=notify_on,
        notify_create=bool(get("notify_create")),
    )


def next_command(step: Any, settings: Settings) -> str:
    """A runner NextStep as the command line to copy: every flag that decides where the run
    lives (--lock-bucket-name, or a non-default --state-dir) and how AWS is reached
    (--region, --endpoint-url, --profile), and --spec for resume."""
    options = dict(step.options)
    parts = ["abfsm", *step.command.split()]  # "sfn start": a sub-command's verb
    if options.get("resume"):
        parts.append("--resume")
    if options.get("state_machine_arn"):
        parts += ["--state-machine-arn", str(options["state_machine_arn"])]
    parts += ["--environment", settings.environment]
    if settings.lock_bucket_name:
        parts += ["--lock-bucket-name", settings.lock_bucket_name]
    elif settings.state_dir != ".abfsm":
        parts += ["--state-dir", settings.state_dir]
    for flag, value in (("--region", settings.region), ("--endpoint-url", settings.endpoint_url),
                        ("--profile", settings.profile)):
        if value:
            parts += [flag, value]
    if step.command in ("resume", "sfn start") and settings.spec:
        parts += ["--spec", settings.spec]
    if options.get("run_id"):
        parts += ["--run-id", str(options["run_id"])]
    if options.get("force"):
        parts.append("--force")
    if options.get("wait"):
        parts.append("--wait")
    text = " ".join(shlex.quote(p) for p in parts)
    return f"{step.why}: {text}" + (f"  ({step.note})" if step.note else "")


def _argv(argv: Sequence[str] | None) -> list[str]:
    args = list(sys.argv[1:] if argv is None else argv)
    # The original tool had no sub-command: `abfsm --environment qa ...` means deploy.
    if args and args[0].startswith("--") and args[0] not in ("--help", "-h", "--version"):
        args.insert(0, "deploy")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_argv(argv))
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(globals()["_cmd_" + args.command.replace("-", "_")](args))
    except AbfsmError as exc:
        _say(f"abfsm {args.command}: {exc}\n")
        _iam_hint(exc, args)
        return exc.exit_code
    except KeyboardInterrupt:
        _say(f"abfsm {args.command}: interrupted\n")
        return 130


def _install_signals(clock: Any) -> None:
    """SIGINT/SIGTERM ask the run to stop: between polls the clock's sleep wakes at once; during
    an AWS call (botocore's retries and back-off included) the handler raises there and then,
    which `aws._call.call` turns into Interrupted. A second signal stops at once, anywhere."""
    from abfsm.clock import in_blocking_call

    def handler(signum: int, _frame: Any) -> None:
        if clock.stop_reason:  # second signal: stop now
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        clock.request_stop(name)
        if in_blocking_call():
            raise KeyboardInterrupt(f"stopped by {name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _report(outcome: Any, fmt: str, args: argparse.Namespace | None = None) -> int:
    """The final one-liner on stderr (the console summary already said it on a terminal)."""
    if outcome.exit_code and fmt == "json" and outcome.message:
        _say(f"abfsm: {outcome.message}\n")
        if outcome.lock.startswith("held"):
            _say(f"abfsm: lock {outcome.lock}; {outcome.next[0]}\n")
    if args is not None and outcome.error is not None:
        saved = outcome.record.settings if outcome.record is not None else None
        _iam_hint(outcome.error, args, saved)
    return int(outcome.exit_code)


# Settings that never change the IAM policy: left out of the iam-policy command a denial names.
_NOT_IN_POLICY = {"log_format", "verbose", "state_dir", "endpoint_url", "profile",
                  "update_timeout", "health_check_timeout", "instance_count",
                  "instance_count_step", "instance_count_match", "notify_on",
                  "pause_at_approval"}
# Sinks that call AWS (the others, HTTP and syslog, need no permission and may hold secrets).
_AWS_SINKS = ("sns:", "events:", "logs:")


def _iam_hint(exc: BaseException, args: argparse.Namespace,
              saved: dict[str, Any] | None = None) -> None:
    """After an AccessDenied: name the refused IAM action and resource and the command that
    prints the policy this run needs."""
    from abfsm import iam

    denied = iam.denial(exc)
    if denied is None:
        return
    try:
        settings = Settings.from_dict(saved) if saved else settings_from(args)
    except UsageError:
        return
    action, resource = iam.refused(denied, settings.region)
    command = args.command if args.command in COMMANDS_IAM else "deploy"
    sys.stderr.write(f"abfsm: AWS refused {action} on {resource}; the policy this needs: "
                     f"{iam_policy_command(settings, command)}\n")


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for act in parser._actions:
        if isinstance(act, argparse._SubParsersAction):
            return act.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


def sfn_start_parser() -> argparse.ArgumentParser:
    """The parser of `abfsm sfn start` (its flags are the execution input's settings)."""
    return _subparser(_subparser(build_parser(), "sfn"), "start")


def iam_policy_command(settings: Settings, command: str = "deploy") -> str:
    """The `abfsm iam-policy ...` command line printing the policy of `settings`."""
    iam = _subparser(build_parser(), "iam-policy")
    defaults = Settings(environment=settings.environment)
    words = ["abfsm", "iam-policy"]
    for act in iam._actions:
        dest, flag = act.dest, (act.option_strings or [""])[-1]
        field = dest if hasattr(settings, dest) else dest + "s"
        if not flag or field in _NOT_IN_POLICY or not hasattr(settings, field):
            continue
        value = getattr(settings, field)
        if field == "notify":
            value = [v for v in value if str(v).startswith(_AWS_SINKS)]
        if value == getattr(defaults, field) and field != "environment":
            continue
        if isinstance(value, bool):
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        elif value is not None:
            words += [flag, str(value)]
    if command != "deploy":
        words += ["--command", command]
    return " ".join(shlex.quote(w) for w in words)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from abfsm import log, runner
    from abfsm.clock import clock_from_env

    settings = settings_from(args)
    spec = runner.prepare(settings)  # a bad spec or flag exits 2 before logging or AWS
    fmt = log.configure(settings.log_format, verbose=settings.verbose)
    clock = clock_from_env()
    _install_signals(clock)
    notifier = _start_notifier(args, settings)
    try:
        return _report(runner.deploy(settings, clock=clock, spec=spec, render_next=next_command),
                       fmt, args)
    finally:
        _stop_notifier(notifier)


def _cmd_resume(args: argparse.Namespace) -> int:
    from abfsm import log, runner
    from abfsm.clock import clock_from_env

    settings = settings_from(args)
    if settings.spec:  # a bad spec or --from exits 2 before logging or AWS
        spec = runner.prepare_for_resume(settings.spec)
        if args.from_state is not None:
            runner.check_state_name(spec, args.from_state)
    fmt = log.configure(settings.log_format, verbose=settings.verbose)
    clock = clock_from_env()
    _install_signals(clock)
    overrides = {"update_timeout": args.update_timeout,
                 "health_check_timeout": args.health_check_timeout}
    notifier = _start_notifier(args, settings)
    try:
        return _report(runner.resume(settings, from_state=args.from_state, force=args.force,
                                     clock=clock, overrides=overrides, render_next=next_command),
                       fmt, args)
    finally:
        _stop_notifier(notifier)


def _start_notifier(args: argparse.Namespace, settings: Settings) -> Any:
    """The --notify sinks, running behind a log tap (none for a dry run: it sends nothing)."""
    specs = _notify_specs(args)
    if not specs or settings.dry_run:
        return None
    from abfsm import log
    from abfsm.clock import SystemClock
    from abfsm.notify.build import start

    # Its own clock: a stop request (SIGINT) ends the run, not the delivery of its outcome.
    notifier = start(specs, events=settings.notify_on, clock=SystemClock(),
                     secret=os.environ.get("ABFSM_WEBHOOK_SECRET") or None,
                     create=settings.notify_create, region=settings.region,
                     endpoint_url=settings.endpoint_url, profile=settings.profile)
    log.add_tap(notifier.tap)
    return notifier


def _stop_notifier(notifier: Any) -> None:
    """Flush run.finished within the notifier's bound; never raises, never sets the exit code."""
    if notifier is None:
        return
    from abfsm import log

    notifier.close()
    log.remove_tap(notifier.tap)


def _cmd_status(args: argparse.Namespace) -> int:
    from abfsm import admin

    _admin_logging(args)
    _say(admin.status(settings_from(args), fmt=args.format), sys.stdout)
    return 0


def _cmd_unlock(args: argparse.Namespace) -> int:
    from abfsm import admin, log
    from abfsm.clock import SystemClock
    from abfsm.runner import make_lock, services_for

    settings = settings_from(args)
    _admin_logging(args)
    services = services_for(settings)
    if args.run_id:
        log.bind(run_id=args.run_id)
    else:  # --force: bind the run it removes, if abfsm wrote the lock (a freeze is no run)
        holder = make_lock(settings, services, SystemClock()).holder()
        if holder is not None and holder.record is not None:
            log.bind(run_id=holder.record.run_id)
    _say(admin.unlock(settings, run_id=args.run_id, force=args.force, services=services),
         sys.stdout)
    return 0


def _admin_logging(args: argparse.Namespace) -> None:
    """status / unlock / graph: stdout is the report, so log lines go to stderr, console style."""
    from abfsm import log

    log.configure("console", stream=sys.stderr)
    if getattr(args, "environment", None):
        log.bind(env=args.environment)


def _cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approved")


def _cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, "rejected")


def _decide(args: argparse.Namespace, decision: str) -> int:
    from abfsm import runner
    from abfsm.actions.approval import approve_command, decide
    from abfsm.clock import clock_from_env

    settings = settings_from(args)
    _admin_logging(args)  # the PutObject audit line goes to stderr; stdout says what was decided
    clock = clock_from_env()
    services = runner.services_for(settings)
    lock = runner.make_lock(settings, services, clock)
    doc = decide(lock, clock, decision, args.reason, run_id=args.run_id,
                 stepfunctions=lambda: services.stepfunctions)  # a client only if needed
    reason = f": {doc['reason']}" if doc.get("reason") else ""
    if doc.get("execution_arn"):
        then = f"the execution carries on: {doc['execution_arn']}"
    else:
        then = ("a waiting run takes it at its next poll; a paused one with: "
                + approve_command(settings, "resume"))
    sys.stdout.write(f"{decision} run {doc['run_id']} at {doc['state']} by {doc['decided_by']} "
                     f"at {doc['decided_at']}{reason}\n{then}\n")
    return 0


def _cmd_iam_policy(args: argparse.Namespace) -> int:
    from abfsm import iam

    settings = settings_from(args)  # the deploy's own checks: exit 2, no AWS call
    spec = iam.load(settings)  # a bad spec exits 2 as it does for deploy
    grants = iam.grants(spec, settings, args.iam_command, args.account_id)
    sys.stdout.write(iam.render(grants, args.format))
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from abfsm import graph

    if args.environment:  # only reading a run's record logs anything (the AWS reads)
        _admin_logging(args)
    return graph.command(args)


def _cmd_sfn(args: argparse.Namespace) -> int:
    import json

    from abfsm import runner
    from abfsm.sfn import engine

    verb = args.sfn_command
    if verb in ("status", "watch"):
        return _sfn_follow(args)
    if verb == "input-schema":
        from abfsm.sfn import input_schema

        sys.stdout.write(input_schema.to_json(input_schema.schema(sfn_start_parser())))
        return 0
    _admin_logging(args)  # stdout is the ARN (or the document); log lines go to stderr
    if verb == "start":
        settings = settings_from(args)
        if args.resume:  # exit 2 before any AWS call
            _check_resume_flags(args, engine.RESUME_OWN)
            engine.check_resume(settings, args.state_machine_arn, runner.load(settings),
                                args.from_state)
        else:
            if args.from_state is not None:
                raise UsageError("--from-state is taken only with --resume")
            engine.check_start(settings, args.state_machine_arn)
            runner.prepare(settings)
        engine.check_notify(args.notify, args.wait)
        if settings.pause_at_approval and not args.wait:
            raise UsageError("--pause-at-approval stops following the execution at an "
                             "approval: it needs --wait")
    else:
        settings = Settings("-", spec=args.spec)
        if verb == "deploy":
            engine.check_deploy(args.name, args.role_arn)
    spec = runner.load(settings)
    if verb == "compile":
        text = engine.compile_document(spec)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text)
        else:
            sys.stdout.write(text)
        return 0
    if verb == "role-policy":
        sys.stdout.write(json.dumps(engine.role_policy(spec, args.lock_bucket_name), indent=2) + "\n")
        return 0
    engine.compile_document(spec)  # a state without an ASL form exits 2 before any AWS call
    services = runner.services_for(Settings("-", region=args.region, endpoint_url=args.endpoint_url,
                                            profile=args.profile))
    services.preflight()
    if verb == "deploy":
        arn, _ = engine.deploy_machine(services, spec, args.name, args.role_arn)
        sys.stdout.write(arn + "\n")
        return 0
    from abfsm.clock import clock_from_env

    clock = clock_from_env()
    if args.resume:
        overrides = {"update_timeout": args.update_timeout,
                     "health_check_timeout": args.health_check_timeout}
        run_id, execution_arn = engine.start_resume(services, settings, args.state_machine_arn,
                                                    clock, spec, from_state=args.from_state,
                                                    overrides=overrides)
    else:
        run_id, execution_arn = engine.start(services, settings, args.state_machine_arn, clock)
    sys.stdout.write(execution_arn + "\n")
    if not args.wait:
        return 0
    from abfsm import log

    fmt = log.configure(settings.log_format, verbose=settings.verbose)
    _install_signals(clock)
    return _sfn_watch(args, settings, services, execution_arn, spec, clock, fmt)


def _sfn_follow(args: argparse.Namespace) -> int:
    """`sfn status` (a report of the history so far) and `sfn watch` (follow it to its end)."""
    from abfsm import log, runner
    from abfsm.sfn import engine

    engine.check_execution_arn(args.execution_arn)  # exit 2 before any AWS call
    spec = runner.load(Settings("-", spec=args.spec))
    connection = Settings("-", region=args.region, endpoint_url=args.endpoint_url,
                          profile=args.profile, spec=args.spec)
    if args.sfn_command == "status":
        _admin_logging(args)
        services = runner.services_for(connection)
        services.preflight()
        problem = engine.definition_problem(services, args.execution_arn, spec)
        if problem:
            _say(f"abfsm sfn status: note: {problem}\n")
        report = engine.read(services, args.execution_arn, spec).report()
        if args.format == "json":
            import json

            _say(json.dumps(report, indent=2, default=str) + "\n", sys.stdout)
        else:
            _say("\n".join(_sfn_status_text(report)) + "\n", sys.stdout)
        return 0
    from abfsm.clock import clock_from_env
    from abfsm.log_schema import EVENTS
    from abfsm.notify import parse_events

    sinks = _notify_specs(args)  # checked before any AWS call
    settings = Settings("-", region=args.region, endpoint_url=args.endpoint_url,
                        profile=args.profile, spec=args.spec,
                        notify=[s.redacted for s in sinks],
                        notify_on=parse_events(args.notify_on, frozenset(EVENTS)),
                        notify_create=bool(args.notify_create),
                        pause_at_approval=bool(args.pause_at_approval))
    fmt = log.configure(args.log_format, verbose=args.verbose)
    clock = clock_from_env()
    _install_signals(clock)
    services = runner.services_for(settings)
    services.preflight()
    return _sfn_watch(args, settings, services, args.execution_arn, spec, clock, fmt)


def _sfn_watch(args: argparse.Namespace, settings: Settings, services: Any, execution_arn: str,
               spec: Any, clock: Any, fmt: str) -> int:
    """Follow the execution as log lines; its exit code is the one `abfsm deploy` would have.
    Ctrl-C stops following only: exit 130, naming the command that picks it up again."""
    from abfsm.errors import Interrupted
    from abfsm.sfn import engine

    notifier = _start_notifier(args, settings)
    try:
        problem = engine.definition_problem(services, execution_arn, spec)
        if problem:
            _say(f"abfsm sfn {args.sfn_command}: note: {problem}\n")
        mapper, waiting = engine.watch(
            services, execution_arn, spec, clock, render_next=next_command,
            connection={"region": settings.region, "endpoint_url": settings.endpoint_url,
                        "profile": settings.profile},
            pause_at_approval=settings.pause_at_approval)
    except (Interrupted, KeyboardInterrupt):
        _say(f"abfsm sfn {args.sfn_command}: stopped following; the execution is still running "
             f"in Step Functions ({execution_arn}); follow it again with: "
             f"{_watch_command(execution_arn, settings)}\n")
        return 130
    finally:
        _stop_notifier(notifier)
    if waiting:
        return _sfn_paused(args, waiting, mapper.settings, settings, execution_arn)
    finished = mapper.finished or {}
    code = int(finished.get("exit_code", 1))
    if code and fmt == "json" and finished.get("error"):
        _say(f"abfsm: {finished['error']}\n")
    return code


def _sfn_paused(args: argparse.Namespace, state: str, run: dict[str, Any],
                settings: Settings, execution_arn: str) -> int:
    """--pause-at-approval: the execution waits in `state` (and goes on waiting in AWS). The
    decide lines are the ones `abfsm deploy` prints when it pauses (the run's environment and
    lock bucket, this follower's connection flags); then how to follow it again."""
    from abfsm.sfn.engine import paused_steps

    where = Settings.from_dict({**run, "region": settings.region,
                                "endpoint_url": settings.endpoint_url,
                                "profile": settings.profile})
    steps = [next_command(step, where) for step in paused_steps()]
    steps.append(f"then follow it: {_watch_command(execution_arn, settings)}")
    _say(f"abfsm sfn {args.sfn_command}: the execution waits for approval in {state} (it "
         "keeps waiting in AWS; lock held)\n"
         + "".join(("  next      " if i == 0 else "            ") + line + "\n"
                   for i, line in enumerate(steps)))
    return EXIT_PAUSED


def _watch_command(execution_arn: str, settings: Settings) -> str:
    """`abfsm sfn watch --execution-arn ARN` with the flags that reach the same AWS."""
    parts = ["abfsm", "sfn", "watch", "--execution-arn", execution_arn]
    for flag, value in (("--region", settings.region), ("--endpoint-url", settings.endpoint_url),
                        ("--profile", settings.profile), ("--spec", settings.spec)):
        if value:
            parts += [flag, value]
    return " ".join(shlex.quote(p) for p in parts)


def _sfn_status_text(report: dict[str, Any]) -> list[str]:
    where = report.get("failed_state") or report.get("state") or "-"
    lines = [f"{report.get('environment')}: execution {report['run_id']} is {report['status']} "
             f"in {where}" + (f" (exit {report['exit_code']})" if report.get("exit_code")
                              is not None else ""),
             f"  execution  {report['execution_arn']}",
             f"  started    {report.get('started_at')}",
             f"  lock       {report.get('lock')}"]
    if report.get("error") or report.get("cause"):
        lines.append(f"  error      {report.get('error')}: {report.get('cause')}")
    from abfsm.log import trigger_words

    for m in report.get("path") or []:
        lines.append(f"    {m['at']}  {m['src']} -> {m['dst']} ({trigger_words(m['trigger'])}, "
                     f"{m['elapsed_s']} s)")
    return lines


def _check_resume_flags(args: argparse.Namespace, own: Sequence[str]) -> None:
    """`sfn start --resume` takes the run's settings: a deploy flag given is refused."""
    start = _subparser(_subparser(build_parser(), "sfn"), "start")
    for act in start._actions:
        if act.dest in own or act.dest in _RESUME_FLAGS or not act.option_strings:
            continue
        if getattr(args, act.dest, act.default) != act.default:
            raise UsageError(f"--resume carries on with the run's own settings; "
                             f"{act.option_strings[-1]} is not taken with it (only "
                             "--update-timeout and --health-check-timeout may change)")


_RESUME_FLAGS = ("help", "state_machine_arn", "wait", "resume", "from_state",
                 "notify", "notify_on", "notify_create",
                 "pause_at_approval")  # the follower's, not the run's


def _cmd_demo(args: argparse.Namespace) -> int:
    from abfsm import demo, log

    fmt = log.configure(args.log_format, verbose=args.verbose)
    return _report(demo.run(step=args.instance_count_step, log_format=fmt, verbose=args.verbose,
                            fast=args.fast), fmt)
