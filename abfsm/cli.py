"""The command line: parse and validate flags, call the runner, print once, choose the exit code.

This is the only module that prints a final message or picks an exit code. It imports
nothing heavy at start-up: `abfsm --help` and `abfsm graph` never import boto3.
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from abfsm import __version__
from abfsm.context import Settings
from abfsm.errors import EXIT_USAGE, AbfsmError, UsageError

COMMANDS = ("deploy", "resume", "status", "unlock", "graph", "demo")
_ENV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,200}$")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming what was wrong (exit 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text.rstrip("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _environment(text: str) -> str:
    if not _ENV_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a usable environment name (letters, digits, . _ - : /)")
    return text


def _target_group(text: str) -> str:
    if not text.startswith("arn:") or ":targetgroup/" not in text:
        raise argparse.ArgumentTypeError(f"must be a target group ARN "
                                         f"(arn:aws:elasticloadbalancing:...:targetgroup/...), got {text!r}")
    return text


_AMI_RE = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")


def _template_version(text: str) -> str:
    if text in ("$Latest", "$Default") or (text.isdigit() and int(text) >= 1):
        return str(int(text)) if text.isdigit() else text
    raise argparse.ArgumentTypeError(f"must be a version number, $Latest or $Default, got {text!r}")


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
               "3 refused by a precondition · 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"abfsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    deploy = sub.add_parser("deploy", help="run an A/B deployment (or --zero, --single-asg, --dry-run)",
                            description="Run an A/B deployment of ENV-a / ENV-b.")
    _env(deploy)
    g = deploy.add_argument_group("what to deploy (the original deploy.py flags)")
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
    v = deploy.add_argument_group("what the new ASG launches")
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
    _store(deploy)
    _logging(deploy)
    _conn(deploy)
    deploy.add_argument("--spec", metavar="FILE", help="state machine spec (default: the packaged states.yaml)")

    resume = sub.add_parser("resume", help="carry on a failed or interrupted run from a named state",
                            description="Re-enter a run's state with its saved context, same run_id and lock.")
    _env(resume)
    resume.add_argument("--from", dest="from_state", metavar="STATE",
                        help="state to re-enter (default: the state the run failed or stopped in)")
    resume.add_argument("--force", action="store_true",
                        help="resume even though the run looks alive (heartbeat not stale)")
    _store(resume)
    _logging(resume)
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
    status.add_argument("--format", choices=("text", "json"), default="text")
    _store(status)
    _conn(status)

    unlock = sub.add_parser("unlock", help="remove an environment lock deliberately")
    _env(unlock)
    who = unlock.add_mutually_exclusive_group(required=True)
    who.add_argument("--run-id", metavar="ID", help="remove the lock only if this run holds it")
    who.add_argument("--force", action="store_true", help="remove whatever holds the lock (a manual freeze too)")
    _store(unlock)
    _conn(unlock)

    graph = sub.add_parser("graph", help="draw the state machine (mermaid, dot, png, svg)")
    graph.add_argument("--spec", metavar="FILE", help="state machine spec (default: packaged)")
    graph.add_argument("--format", choices=("mermaid", "dot", "png", "svg"), default="mermaid")
    graph.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    graph.add_argument("--environment", type=_environment, metavar="ENV",
                       help="mark where ENV's current or last run is and the path it took")
    _store(graph)
    _conn(graph)

    demo = sub.add_parser("demo", help="a full A/B deployment against an embedded AWS emulator (no credentials)")
    demo.add_argument("--instance-count-step", type=_count, default=1, metavar="N",
                      help="step size of the demo deployment (default: 1)")
    _logging(demo)
    return parser


def _env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--environment", required=True, type=_environment, metavar="ENV",
                   help="the environment: ASGs ENV-a and ENV-b (or ENV with --single-asg)")


def _store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-bucket-name", metavar="BUCKET",
                   help="S3 bucket holding ENV.lock and the run records (default: local --state-dir)")
    p.add_argument("--state-dir", default=".abfsm", metavar="DIR",
                   help="local lock and run records when no bucket is given (default: .abfsm)")


def _logging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=("auto", "console", "json"), default="auto",
                   help="console on a terminal, JSON lines otherwise (default: auto)")
    p.add_argument("--verbose", action="store_true", help="per-poll detail and every AWS call")


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
        region=get("region"),
        endpoint_url=get("endpoint_url"),
        profile=get("profile"),
    )


def next_command(step: Any, settings: Settings) -> str:
    """A runner NextStep as the command line to copy: every flag that decides where the run
    lives (--lock-bucket-name, or a non-default --state-dir) and how AWS is reached
    (--region, --endpoint-url, --profile), and --spec for resume."""
    parts = ["abfsm", step.command, "--environment", settings.environment]
    if settings.lock_bucket_name:
        parts += ["--lock-bucket-name", settings.lock_bucket_name]
    elif settings.state_dir != ".abfsm":
        parts += ["--state-dir", settings.state_dir]
    for flag, value in (("--region", settings.region), ("--endpoint-url", settings.endpoint_url),
                        ("--profile", settings.profile)):
        if value:
            parts += [flag, value]
    if step.command == "resume" and settings.spec:
        parts += ["--spec", settings.spec]
    options = dict(step.options)
    if options.get("run_id"):
        parts += ["--run-id", str(options["run_id"])]
    if options.get("force"):
        parts.append("--force")
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
        return int(globals()["_cmd_" + args.command](args))
    except AbfsmError as exc:
        sys.stderr.write(f"abfsm {args.command}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"abfsm {args.command}: interrupted\n")
        return 130


def _install_signals(clock: Any) -> None:
    def handler(signum: int, _frame: Any) -> None:
        if clock.stop_reason:  # second signal: stop now
            raise KeyboardInterrupt
        clock.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _report(outcome: Any, fmt: str) -> int:
    """The final one-liner on stderr (the console summary already said it on a terminal)."""
    if outcome.exit_code and fmt == "json" and outcome.message:
        sys.stderr.write(f"abfsm: {outcome.message}\n")
        if outcome.lock.startswith("held"):
            sys.stderr.write(f"abfsm: lock {outcome.lock}; {outcome.next[0]}\n")
    return int(outcome.exit_code)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from abfsm import log, runner
    from abfsm.clock import clock_from_env

    settings = settings_from(args)
    spec = runner.prepare(settings)  # a bad spec or flag exits 2 before logging or AWS
    fmt = log.configure(settings.log_format, verbose=settings.verbose)
    clock = clock_from_env()
    _install_signals(clock)
    return _report(runner.deploy(settings, clock=clock, spec=spec, render_next=next_command), fmt)


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
    return _report(runner.resume(settings, from_state=args.from_state, force=args.force,
                                 clock=clock, overrides=overrides, render_next=next_command), fmt)


def _cmd_status(args: argparse.Namespace) -> int:
    from abfsm import admin, log

    log.configure("auto", stream=sys.stderr)  # stdout is the report (JSON with --format json)
    sys.stdout.write(admin.status(settings_from(args), fmt=args.format))
    return 0


def _cmd_unlock(args: argparse.Namespace) -> int:
    from abfsm import admin, log

    log.configure("auto", stream=sys.stderr)  # the DeleteObject audit line; stdout says what went
    sys.stdout.write(admin.unlock(settings_from(args), run_id=args.run_id, force=args.force))
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from abfsm import graph

    return graph.command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from abfsm import demo, log

    fmt = log.configure(args.log_format, verbose=args.verbose)
    return _report(demo.run(step=args.instance_count_step, log_format=fmt, verbose=args.verbose), fmt)
