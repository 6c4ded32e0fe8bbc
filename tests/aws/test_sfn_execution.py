"""Both engines, same world, same outcome: `abfsm deploy` (runner) and `abfsm sfn deploy` +
`abfsm sfn start --wait`, an execution of the compiled machine (moto's ASL interpreter, in
process).

moto gaps corrected or avoided here (not in the ASL): execution must be enabled with
`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`; a SUCCEEDED
execution's output must not hold the aws-sdk results' datetimes (moto does not serialise
them; the Succeed state outputs only $.plan); Wait states sleep in real time, so the waits
here use 1 s polls and moto's instant instances need none.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from abfsm.aws import connect
from abfsm.cli import main
from abfsm.context import Settings
from abfsm.record import parse
from tests.fakes import FakeClock
from tests.support.aws_env import (
    CREDENTIALS, REGION, build_env, capacities, client_factory, elb_states, instance_ids,
)

BUCKET = "abfsm-locks"
ROLE = "arn:aws:iam::123456789012:role/abfsm-sfn"
ASGS = ["qa-a", "qa-b"]


@pytest.fixture
def make() -> Iterator[Callable[[str], Any]]:
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


def _settings(**flags: Any) -> Settings:
    flags.setdefault("no_elb_check", True)
    return Settings("qa", lock_bucket_name=BUCKET, update_timeout=1, health_check_timeout=3,
                    **flags)


_SCALED: list[int] = []  # the target ASG's desired capacities, step by step, of the last run


def _local(settings: Settings) -> int:
    from structlog.testing import capture_logs

    from abfsm import runner

    services = connect(region=REGION, credentials=CREDENTIALS)
    with capture_logs() as logs:
        code = int(runner.deploy(settings, services=services, clock=FakeClock()).exit_code)
    _SCALED[:] = [e["desired"] for e in logs if e["event"] == "scale.step"]
    return code


def _argv(settings: Settings) -> list[str]:
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


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue().strip()


def _sfn(settings: Settings) -> int:
    """`abfsm sfn deploy`, then `abfsm sfn start --wait` (in process, against moto)."""
    code, arn = _cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION)
    assert code == 0 and arn.startswith("arn:aws:states:"), arn
    code, execution = _cli("sfn", "start", "--state-machine-arn", arn, *_argv(settings),
                           "--region", REGION, "--wait")
    assert execution.startswith("arn:aws:states:") and ":execution:abfsm:" in execution
    history = client_factory()("stepfunctions").get_execution_history(
        executionArn=execution, maxResults=1000)["events"]
    calls = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history
             if e["type"] == "TaskScheduled"
             and e["taskScheduledEventDetails"]["resource"] == "updateAutoScalingGroup"]
    _SCALED[:] = [c["DesiredCapacity"] for c in calls if c["DesiredCapacity"] > 0]
    return code


ENGINES = {"local": _local, "sfn": _sfn}


def _lock(make: Callable[[str], Any]) -> bytes | None:
    try:
        return bytes(make("s3").get_object(Bucket=BUCKET, Key="qa.lock")["Body"].read())
    except make("s3").exceptions.NoSuchKey:
        return None


def _runs(make: Callable[[str], Any]) -> list[str]:
    found = make("s3").list_objects_v2(Bucket=BUCKET, Prefix="qa/runs/").get("Contents", [])
    return [o["Key"] for o in found]


@pytest.mark.parametrize("engine_name", ENGINES)
def test_standard_ab_deployment_ends_the_same_on_both_engines(make, engine_name):
    """qa-a serving 2 -> qa-b 3 instances, qa-a at 0, lock released, one valid run record
    (status done) archived, exit 0."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](_settings(instance_count=3)) == 0
    caps = capacities(make, ASGS)
    assert caps["qa-a"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-b"] == {"desired": 3, "min": 0, "max": 10, "instances": 3}
    assert _lock(make) is None
    [key] = _runs(make)
    saved = parse(make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert saved is not None and saved.status == "done" and saved.environment == "qa"


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("lbs", [{"classic_elb": True}, {"classic_elb": True, "target_groups": 2}],
                         ids=["classic-elb", "elb-and-2-target-groups"])
def test_deployment_waits_for_the_discovered_load_balancers(make, engine_name, lbs):
    """ELB (and target groups) discovered from qa-b: qa-b's 3 instances serve in each, qa-a 0."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET, **lbs)
    assert ENGINES[engine_name](_settings(instance_count=3, no_elb_check=False)) == 0
    new = set(instance_ids(make, "qa-b"))
    assert len(new) == 3 and capacities(make, ASGS)["qa-a"]["desired"] == 0
    assert elb_states(make, "qa-public") == {i: "InService" for i in new}
    assert _lock(make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_stepped_deployment_raising_max_size_ends_the_same(make, engine_name):
    """--instance-count 5 --instance-count-step 2 over MaxSize 4: qa-b scaled 2, 4, 5 (MaxSize
    raised to 5), qa-a 0."""
    build_env(make, "qa", active="a", active_count=2, max_size=4, classic_elb=False,
              bucket=BUCKET)
    assert ENGINES[engine_name](_settings(instance_count=5, instance_count_step=2)) == 0
    assert _SCALED == [2, 4, 5]
    caps = capacities(make, ASGS)
    assert caps["qa-b"] == {"desired": 5, "min": 0, "max": 5, "instances": 5}
    assert caps["qa-a"]["desired"] == 0
    assert _lock(make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_lock_held_is_refused_and_left_alone(make, engine_name):
    """ENV.lock already there: exit 3, the lock's bytes untouched, no ASG changed."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    make("s3").put_object(Bucket=BUCKET, Key="qa.lock", Body=b"held by hand\n")
    assert ENGINES[engine_name](_settings(instance_count=3)) == 3
    assert _lock(make) == b"held by hand\n"
    assert capacities(make, ASGS)["qa-b"]["desired"] == 0


@pytest.mark.parametrize("engine_name", ENGINES)
def test_both_populated_is_refused_and_the_lock_released(make, engine_name):
    """qa-a and qa-b both have instances: exit 3, nothing scaled, lock released."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    assert ENGINES[engine_name](_settings(instance_count=3)) == 3
    caps = capacities(make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 1)
    assert _lock(make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_zero_drains_the_active_asg_on_both_engines(make, engine_name):
    """--zero: qa-a (2) to 0, qa-b untouched, lock released, exit 0."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](_settings(zero=True)) == 0
    caps = capacities(make, ASGS)
    assert caps["qa-a"]["desired"] == 0 and caps["qa-b"]["desired"] == 0
    assert _lock(make) is None


@pytest.fixture
def frozen(make: Callable[[str], Any]) -> Iterator[None]:
    """The emulator's world model, frozen: new instances never leave Pending."""
    from abfsm.emulator import world as world_model

    world_model.activate(world_model.World(world_model.WorldClock(scale=0.0)))
    yield
    world_model.deactivate()


@pytest.mark.parametrize("engine_name", ENGINES)
def test_rollback_on_failure_scales_the_new_asg_back(make, frozen, engine_name):
    """Instances never ready, --rollback-on-failure: exit 1, qa-b back to 0, qa-a still 2,
    lock released."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](_settings(instance_count=2, rollback_on_failure=True)) == 1
    caps = capacities(make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert _lock(make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_failed_run_keeps_the_lock_and_a_cli_deploy_is_refused(make, frozen, engine_name):
    """Instances never ready: exit 1, the lock kept with a valid record (status failed, the
    error named), and a following `abfsm deploy` is refused (exit 3)."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](_settings(instance_count=2)) == 1
    body = _lock(make)
    assert body is not None
    saved = parse(body)[0]
    assert saved is not None and saved.status == "failed"
    assert "wait-instances" in (saved.last_error or "")
    assert _local(_settings(instance_count=2)) == 3
    assert _lock(make) == body


def test_resume_refuses_to_take_over_a_step_functions_run(make, frozen):
    """The lock of a failed execution names its engine and execution: `abfsm resume` refuses
    it (exit 3, lock untouched) however old its heartbeat, never taking the run over."""
    from abfsm import runner
    from abfsm.errors import Refused

    build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert _sfn(_settings(instance_count=2)) == 1
    body = _lock(make)
    saved = parse(body or b"")[0]
    assert saved is not None and saved.engine == "stepfunctions"
    assert (saved.execution_arn or "").startswith("arn:aws:states:")
    clock = FakeClock()
    clock.advance(86400)  # a day later: the heartbeat is long stale
    with pytest.raises(Refused, match="Step Functions execution"):
        runner.resume(_settings(), services=connect(region=REGION, credentials=CREDENTIALS),
                      clock=clock, force=True)
    assert _lock(make) == body
