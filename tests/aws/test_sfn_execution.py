"""Both engines, same world, same outcome: `abfsm deploy` (runner) and `abfsm sfn deploy` +
`abfsm sfn start --wait`, an execution of the compiled machine (moto's ASL interpreter, in
process); and the execution's throttling Retry blocks, throttled on purpose.

The outcome matrix is tests/support/sfn_outcomes.py's CASES: each case runs on each engine in
a fresh moto and must reach the case's Outcome (exit code, every ASG's counts, the capacities
scaled through, what serves in each load balancer, the lock and the archived records), so
the two engines are compared on everything a user can see. `benchmarks/sfn_outcomes.py`
prints the same matrix side by side.

moto gaps corrected or avoided here (not in the ASL): execution must be enabled with
`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`; the load balancer
aws-sdk service names and the aws-sdk error names are corrected by the emulator's fixes
(abfsm/emulator/fixes.py 7 and 8: plain moto names a throttled call's error
`autoscaling.autoscalingException`, AWS `AutoScaling.ThrottlingException`, the name the Retry
blocks list); moto never throttles, so `throttled()` answers chosen calls of the execution
with AWS's throttling error; a SUCCEEDED execution's output must not hold the aws-sdk
results' datetimes (moto does not serialise them; the Succeed state outputs only $.plan);
Wait states and Retry intervals sleep in real time, so the waits here use 1 s polls and the
throttling tests compile Retry intervals of 1 s (`fast_retries`; production: 2 s, backoff 2,
6 retries, as the golden file shows).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from abfsm.aws import connect
from abfsm.record import parse
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, build_env, capacities
from tests.support.sfn_moto import (
    BUCKET, ENGINES, archived_runs, fast_retries, last_execution, lock_body, run_local, run_sfn,
    settings_for, throttled,
)
from tests.support.sfn_outcomes import CASES, Case, outcome, run_case

STANDARD = next(c for c in CASES if c.id == "standard-ab")


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_both_engines_reach_the_case_outcome(case: Case, engine_name: str) -> None:
    """The same world and flags end in the same exit code, AWS state, lock and records on
    either engine (tests/support/sfn_outcomes.py CASES)."""
    assert run_case(case, engine_name).outcome == case.expected


def _task_failures(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["taskFailedEventDetails"]["resource"], e["taskFailedEventDetails"]["error"])
            for e in events if e["type"] == "TaskFailed"]


def test_a_throttled_scale_is_retried_and_the_deployment_succeeds(sfn_make):
    """UpdateAutoScalingGroup throttled twice: two TaskFailed AutoScaling.ThrottlingException
    in the history, the third attempt succeeds, and the run ends as an unthrottled one does."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    with fast_retries(), throttled("UpdateAutoScalingGroup", 2) as throttle:
        code = run_sfn(STANDARD.settings())
    assert throttle.answered == 2
    execution, events = last_execution(sfn_make)
    assert execution["status"] == "SUCCEEDED"
    assert _task_failures(events) == [("updateAutoScalingGroup",
                                       "AutoScaling.ThrottlingException")] * 2
    # the step's call is scheduled once per attempt: (3, 3, 3) where unthrottled says (3,)
    assert outcome(sfn_make, code) == replace(STANDARD.expected, scaled=(3, 3, 3))


def test_a_throttled_lock_write_is_retried(sfn_make):
    """The lock's PutObject answered SlowDown once: one TaskFailed S3.SlowDownException, the
    retry takes the lock, the run succeeds and releases it."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    with fast_retries(), throttled("PutObject", 1) as throttle:
        code = run_sfn(STANDARD.settings())
    assert (code, throttle.answered) == (0, 1)
    _, events = last_execution(sfn_make)
    assert _task_failures(events) == [("putObject", "S3.SlowDownException")]
    assert outcome(sfn_make, code) == STANDARD.expected


def test_throttling_beyond_the_retries_fails_the_run_and_keeps_the_lock(sfn_make):
    """UpdateAutoScalingGroup always throttled: after the Retry's attempts the execution ends
    FAILED abfsm.StateFailed (exit 1), qa-b never scaled, the lock kept with status failed
    and an error naming scale and the throttling."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    with fast_retries(attempts=2), throttled("UpdateAutoScalingGroup", None) as throttle:
        code = run_sfn(STANDARD.settings())
    assert (code, throttle.answered) == (1, 3)  # the call and its 2 retries
    execution, events = last_execution(sfn_make)
    assert (execution["status"], execution["error"]) == ("FAILED", "abfsm.StateFailed")
    assert len(_task_failures(events)) == 3
    caps = capacities(sfn_make, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    saved = parse(lock_body(sfn_make) or b"")[0]
    assert saved is not None and (saved.status, saved.state) == ("failed", "failed")
    assert (saved.last_error or "").startswith("scale: Rate exceeded (Service: AutoScaling")
    assert archived_runs(sfn_make) == []


def test_plain_motos_error_names_would_not_be_retried(sfn_make):
    """Without the emulator's error-name correction a throttled call is named
    autoscaling.autoscalingException, which no Retry lists: one throttle fails the run."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    from abfsm.emulator.fixes import unpatched

    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    with (unpatched((StateTaskServiceAwsSdk, "_from_error")), fast_retries(),
          throttled("UpdateAutoScalingGroup", 1)):
        assert run_sfn(STANDARD.settings()) == 1
    _, events = last_execution(sfn_make)
    assert _task_failures(events) == [("updateAutoScalingGroup", "autoscaling.autoscalingException")]


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_failed_run_keeps_the_lock_and_a_cli_deploy_is_refused(sfn_make, frozen_world, engine_name):
    """Instances never ready: exit 1, the lock kept with a valid record (status failed, the
    error named), and a following `abfsm deploy` is refused (exit 3)."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count=2)) == 1
    body = lock_body(sfn_make)
    assert body is not None
    saved = parse(body)[0]
    assert saved is not None and saved.status == "failed"
    assert "wait-instances" in (saved.last_error or "")
    assert run_local(settings_for(instance_count=2)) == 3
    assert lock_body(sfn_make) == body


def test_resume_refuses_to_take_over_a_step_functions_run(sfn_make, frozen_world):
    """The lock of a failed execution names its engine and execution: `abfsm resume` refuses
    it (exit 3, lock untouched) however old its heartbeat, never taking the run over."""
    from abfsm import runner
    from abfsm.errors import Refused

    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert run_sfn(settings_for(instance_count=2)) == 1
    body = lock_body(sfn_make)
    saved = parse(body or b"")[0]
    assert saved is not None and saved.engine == "stepfunctions"
    assert (saved.execution_arn or "").startswith("arn:aws:states:")
    clock = FakeClock()
    clock.advance(86400)  # a day later: the heartbeat is long stale
    with pytest.raises(Refused, match="Step Functions execution"):
        runner.resume(settings_for(), services=connect(region=REGION, credentials=CREDENTIALS),
                      clock=clock, force=True)
    assert lock_body(sfn_make) == body
