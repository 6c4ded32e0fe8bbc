"""Step Functions executions against moto in process, for the tests of both engines.

moto gaps corrected (not in the ASL): executions must be enabled with
`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`; the emulator's fixes
(abfsm/emulator/fixes.py) map the aws-sdk load balancer service names (`elasticloadbalancing`,
`elasticloadbalancingv2`) to boto3's (`elb`, `elbv2`), name every aws-sdk ClientError as AWS
does (`ServiceName.CodeException`, where moto says `service.serviceException`) and give
`$$.Execution.StartTime` as AWS does, an ISO 8601 string (corrections 7, 8 and 9); Wait states
and Retry intervals sleep in real time, so tests poll every 1 s and compile smaller Retry
intervals (`fast_retries`). `throttled()` makes the execution's calls of one API answer with
AWS's throttling error.

`sfn_make` (fixture, in tests/aws/conftest.py) yields a client factory like `make`; `run_local`
and `run_sfn` run the same Settings through `abfsm deploy` (the runner) and `abfsm sfn deploy`
+ `abfsm sfn start --wait` (in process), returning the exit code; `SCALED` holds the target
ASG's desired capacities, step by step, of the last run.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from abfsm.aws import connect
from abfsm.emulator import fixes
from abfsm.cli import main
from abfsm.context import Settings
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, client_factory

BUCKET = "abfsm-locks"
ROLE = "arn:aws:iam::123456789012:role/abfsm-sfn"
ASGS = ["qa-a", "qa-b"]


@contextlib.contextmanager
def executing_moto() -> Iterator[Callable[[str], Any]]:
    """In-process moto with Step Functions executions enabled (and the emulator's corrections,
    among them the aws-sdk load balancer service names and AWS's error names)."""
    from moto import mock_aws

    fixes.apply()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield client_factory()


THROTTLE_CODES = {"autoscaling": "Throttling", "elb": "Throttling", "elbv2": "Throttling",
                  "cloudwatch": "Throttling", "s3": "SlowDown"}


@dataclass
class Throttle:
    """What `throttled()` did: the calls of the API it answered with a throttling error."""

    api: str
    times: int | None  # None: every call
    answered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _before_call(self, model: Any, **_: Any) -> None:
        if model.name != self.api:
            return
        with self._lock:
            if self.times is not None and self.answered >= self.times:
                return
            self.answered += 1
            n = self.answered
        code = THROTTLE_CODES[model.service_model.service_name]
        raise ClientError({"Error": {"Code": code, "Message": "Rate exceeded"},
                           "ResponseMetadata": {"HTTPStatusCode": 400,
                                                "RequestId": f"throttled-{n}"}}, model.name)


@contextlib.contextmanager
def throttled(api: str, times: int | None) -> Iterator[Throttle]:
    """The execution's aws-sdk calls of `api` (e.g. "UpdateAutoScalingGroup", "PutObject")
    throttled: the first `times` (None: all) answered with the service's throttling error
    (Throttling; SlowDown for S3), as AWS answers them, before they reach moto.

    moto's interpreter builds a boto3 client per task with `boto_client_for`; the wrapper
    registers a botocore `before-call` hook on each. Only the execution's clients are
    throttled, never the test's or the local engine's."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    throttle = Throttle(api, times)
    original = aws_sdk.boto_client_for

    def boto_client_for(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        client.meta.events.register("before-call", throttle._before_call)
        return client

    aws_sdk.boto_client_for = boto_client_for
    try:
        yield throttle
    finally:
        aws_sdk.boto_client_for = original


@contextlib.contextmanager
def fast_retries(attempts: int = 2) -> Iterator[None]:
    """Machines compiled in the block retry throttling after 1 s, then 1 s again (backoff 1),
    `attempts` times: moto really sleeps Retry intervals (production: 2 s x 2, 6 times)."""
    from abfsm.sfn import fragments

    saved = (fragments.RETRY_INTERVAL_S, fragments.RETRY_MAX_ATTEMPTS, fragments.RETRY_BACKOFF_RATE)
    fragments.RETRY_INTERVAL_S, fragments.RETRY_MAX_ATTEMPTS, fragments.RETRY_BACKOFF_RATE = 1, attempts, 1.0
    try:
        yield
    finally:
        fragments.RETRY_INTERVAL_S, fragments.RETRY_MAX_ATTEMPTS, fragments.RETRY_BACKOFF_RATE = saved


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
    elif settings.instance_count_match:
        argv.append("--instance-count-match")
    else:
        argv += ["--instance-count", str(settings.instance_count)]
    if settings.instance_count_step:
        argv += ["--instance-count-step", str(settings.instance_count_step)]
    switches = {"rollback_on_failure": "--rollback-on-failure", "single_asg": "--single-asg",
                "clean_up": "--clean-up", "wait_for_scale_down": "--wait-for-scale-down",
                "resume_processes": "--resume-processes"}
    argv += [flag for field, flag in switches.items() if getattr(settings, field)]
    if settings.spec:
        argv += ["--spec", settings.spec]
    return argv


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue().strip()


def deploy_machine(spec: str | None = None) -> str:
    """`abfsm sfn deploy` of `spec` (default: the packaged one): the state machine's ARN."""
    extra = ["--spec", spec] if spec else []
    code, arn = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION,
                    *extra)
    assert code == 0 and arn.startswith("arn:aws:states:"), arn
    return arn


def run_sfn(settings: Settings, extra: Sequence[str] = ()) -> int:
    """`abfsm sfn deploy` (of `settings.spec`, if any), then `abfsm sfn start --wait` with
    `extra` flags besides start_argv's (in process, against moto)."""
    arn = deploy_machine(settings.spec)
    code, out = cli("sfn", "start", "--state-machine-arn", arn, *start_argv(settings),
                     *extra, "--region", REGION, "--wait")
    execution = out.splitlines()[0]  # the ARN, then the followed execution's log lines
    assert execution.startswith("arn:aws:states:") and ":execution:abfsm:" in execution
    history = client_factory()("stepfunctions").get_execution_history(
        executionArn=execution, maxResults=1000)["events"]
    calls = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history
             if e["type"] == "TaskScheduled"
             and e["taskScheduledEventDetails"]["resource"] == "updateAutoScalingGroup"]
    SCALED[:] = [c["DesiredCapacity"] for c in calls if c.get("DesiredCapacity", 0) > 0]
    return code


def last_execution(make: Callable[[str], Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one execution of the one state machine: (DescribeExecution, its history events)."""
    sfn = make("stepfunctions")
    [machine] = sfn.list_state_machines()["stateMachines"]
    [listed] = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    arn = listed["executionArn"]
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return sfn.describe_execution(executionArn=arn), events


def lock_body(make: Callable[[str], Any]) -> bytes | None:
    try:
        return bytes(make("s3").get_object(Bucket=BUCKET, Key="qa.lock")["Body"].read())
    except make("s3").exceptions.NoSuchKey:
        return None


def archived_runs(make: Callable[[str], Any]) -> list[str]:
    found = make("s3").list_objects_v2(Bucket=BUCKET, Prefix="qa/runs/").get("Contents", [])
    return [o["Key"] for o in found]


ENGINES: dict[str, Callable[[Settings], int]] = {"local": run_local, "sfn": run_sfn}
