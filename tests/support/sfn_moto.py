"""Step Functions executions against moto in process, for the tests of both engines.

moto gaps corrected here (not in the ASL): executions must be enabled with
`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`; the aws-sdk service
names of the load balancer APIs (`elasticloadbalancing`, `elasticloadbalancingv2`) are not
boto3's (`elb`, `elbv2`); aws-sdk tasks skip Step Functions' request/response shaping (a JSON
object given for a blob parameter, e.g. s3 PutObject's Body, is not serialised; a streamed
response member, e.g. GetObject's Body, is not read into a string); SendTaskFailure drops its
`cause`; Wait states sleep in real time, so tests poll every 1 s.

`sfn_make` (fixture, in tests/aws/conftest.py) yields a client factory like `make`; `run_local`
and `run_sfn` run the same Settings through `abfsm deploy` (the runner) and `abfsm sfn deploy`
+ `abfsm sfn start --wait` (in process), returning the exit code; `SCALED` holds the target
ASG's desired capacities, step by step, of the last run.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
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
        with _task_failure_with_cause(), _aws_sdk_shaping(), \
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield client_factory()
    finally:
        overrides.clear()  # type: ignore[attr-defined]
        overrides.update(saved)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _aws_sdk_shaping() -> Iterator[None]:
    """moto gap: Step Functions serialises a JSON object handed to a blob parameter (e.g.
    s3 PutObject's Body) and reads a streamed response member (GetObject's Body) into a
    string; moto's interpreter does neither (its _normalise_* hooks are no-ops)."""
    import botocore.session
    from botocore.response import StreamingBody
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    models = botocore.session.get_session()

    def normalise_parameters(self: Any, parameters: dict[str, Any], *_: Any, **__: Any) -> None:
        api = self.resource.api_action
        shape = models.get_service_model(self._get_boto_service_name()).operation_model(
            api[:1].upper() + api[1:]).input_shape
        for name, member in (shape.members.items() if shape is not None else ()):
            if member.type_name == "blob" and isinstance(parameters.get(name), (dict, list)):
                parameters[name] = json.dumps(parameters[name], separators=(",", ":"))

    def normalise_response(self: Any, response: Any, *_: Any, **__: Any) -> None:
        if isinstance(response, dict):
            for name, value in list(response.items()):
                if isinstance(value, StreamingBody):
                    response[name] = value.read().decode("utf-8")

    saved = (StateTaskServiceAwsSdk._normalise_parameters, StateTaskServiceAwsSdk._normalise_response)
    StateTaskServiceAwsSdk._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceAwsSdk._normalise_response = normalise_response  # type: ignore[method-assign]
    try:
        yield
    finally:
        (StateTaskServiceAwsSdk._normalise_parameters,  # type: ignore[method-assign]
         StateTaskServiceAwsSdk._normalise_response) = saved  # type: ignore[method-assign]


@contextlib.contextmanager
def _task_failure_with_cause() -> Iterator[None]:
    """moto gap: its SendTaskFailure handler passes the error on but drops the cause."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"),
            cause=self._get_param("cause"))
        return EmptyResult()

    saved = StepFunctionResponse.send_task_failure
    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]
    try:
        yield
    finally:
        StepFunctionResponse.send_task_failure = saved  # type: ignore[method-assign]


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


def run_sfn(settings: Settings) -> int:
    """`abfsm sfn deploy` (of settings.spec), then `abfsm sfn start --wait` (in process,
    against moto)."""
    arn = deploy_machine(settings.spec)
    code, execution = cli("sfn", "start", "--state-machine-arn", arn, *start_argv(settings),
                           "--region", REGION, "--wait")
    assert execution.startswith("arn:aws:states:") and ":execution:abfsm:" in execution
    history = client_factory()("stepfunctions").get_execution_history(
        executionArn=execution, maxResults=1000)["events"]
    calls = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history
             if e["type"] == "TaskScheduled"
             and e["taskScheduledEventDetails"]["resource"] == "updateAutoScalingGroup"]
    SCALED[:] = [c["DesiredCapacity"] for c in calls if c["DesiredCapacity"] > 0]
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
