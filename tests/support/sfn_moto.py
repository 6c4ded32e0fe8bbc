"""Step Functions executions against moto in process, for the tests of both engines.

moto gaps corrected here (not in the ASL): executions must be enabled with
`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`; the aws-sdk service
names of the load balancer APIs (`elasticloadbalancing`, `elasticloadbalancingv2`) are not
boto3's (`elb`, `elbv2`); Wait states sleep in real time, so tests poll every 1 s.

`sfn_make` (fixture, in tests/aws/conftest.py) yields a client factory like `make`; `run_local`
and `run_sfn` run the same Settings through `abfsm deploy` (the runner) and `abfsm sfn deploy`
+ `abfsm sfn start --wait` (in process), returning the exit code; `SCALED` holds the target
ASG's desired capacities, step by step, of the last run.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from abfsm.aws import connect
from abfsm.cli import main
from abfsm.context import Settings
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, client_factory

BUCKET = "abfsm-locks"
ROLE = "arn:aws:iam::123456789012:role/abfsm-sfn"
ASGS = ["qa-a", "qa-b"]


@contextlib.contextmanager
def executing_moto() -> Iterator[Callable[[str], Any]]:
    """In-process moto with Step Functions executions enabled."""
    from moto import mock_aws

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    # moto gap: the aws-sdk service names of the load balancer APIs are not boto3's.
    overrides = StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES
    saved = dict(overrides)
    overrides.update({"elasticloadbalancing": "elb", "elasticloadbalancingv2": "elbv2"})  # type: ignore[index]
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield client_factory()
    finally:
        overrides.clear()  # type: ignore[attr-defined]
        overrides.update(saved)  # type: ignore[attr-defined]


def settings_for(**flags: Any) -> Settings:
    flags.setdefault("no_elb_check", True)
    return Settings("qa", lock_bucket_name=BUCKET, update_timeout=1, health_check_timeout=3,
                    **flags)


SCALED: list[int] = []  # the target ASG's desired capacities, step by step, of the last run


def run_local(settings: Settings) -> int:
    from structlog.testing import capture_logs

    from abfsm import runner

    services = connect(region=REGION, credentials=CREDENTIALS)
    with capture_logs() as logs:
        code = int(runner.deploy(settings, services=services, clock=FakeClock()).exit_code)
    SCALED[:] = [e["desired"] for e in logs if e["event"] == "scale.step"]
    return code


def start_argv(settings: Settings) -> list[str]:
    """The deploy flags of `settings` that these tests vary, as `sfn start` takes them."""
    argv = ["--environment", settings.environment, "--lock-bucket-name", BUCKET,
            "--update-timeout", str(settings.update_timeout),
            "--health-check-timeout", str(settings.health_check_timeout)]
    if settings.no_elb_check:
        argv.append("--no-elb-check")
    if settings.zero:
        argv.append("--zero")
    else:
        argv += ["--instance-count", str(settings.instance_count)]
    if settings.instance_count_step:
        argv += ["--instance-count-step", str(settings.instance_count_step)]
    if settings.rollback_on_failure:
        argv.append("--rollback-on-failure")
    return argv


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue().strip()


def run_sfn(settings: Settings, extra: Sequence[str] = ()) -> int:
    """`abfsm sfn deploy` (of `settings.spec`, if any), then `abfsm sfn start --wait` with
    `extra` flags besides start_argv's (in process, against moto)."""
    spec = ["--spec", settings.spec] if settings.spec else []
    code, arn = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION,
                    *spec)
    assert code == 0 and arn.startswith("arn:aws:states:"), arn
    code, execution = cli("sfn", "start", "--state-machine-arn", arn, *start_argv(settings),
                           *extra, "--region", REGION, "--wait")
    assert execution.startswith("arn:aws:states:") and ":execution:abfsm:" in execution
    history = client_factory()("stepfunctions").get_execution_history(
        executionArn=execution, maxResults=1000)["events"]
    calls = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history
             if e["type"] == "TaskScheduled"
             and e["taskScheduledEventDetails"]["resource"] == "updateAutoScalingGroup"]
    SCALED[:] = [c["DesiredCapacity"] for c in calls if c.get("DesiredCapacity", 0) > 0]
    return code


def lock_body(make: Callable[[str], Any]) -> bytes | None:
    try:
        return bytes(make("s3").get_object(Bucket=BUCKET, Key="qa.lock")["Body"].read())
    except make("s3").exceptions.NoSuchKey:
        return None


def archived_runs(make: Callable[[str], Any]) -> list[str]:
    found = make("s3").list_objects_v2(Bucket=BUCKET, Prefix="qa/runs/").get("Contents", [])
    return [o["Key"] for o in found]


ENGINES: dict[str, Callable[[Settings], int]] = {"local": run_local, "sfn": run_sfn}
