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

import pytest

from abfsm.aws import connect
from abfsm.record import parse
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, build_env, capacities, elb_states, instance_ids
from tests.support.sfn_moto import (
    ASGS, BUCKET, ENGINES, SCALED, archived_runs, lock_body, run_local, run_sfn, settings_for,
)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_standard_ab_deployment_ends_the_same_on_both_engines(sfn_make, engine_name):
    """qa-a serving 2 -> qa-b 3 instances, qa-a at 0, lock released, one valid run record
    (status done) archived, exit 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count=3)) == 0
    caps = capacities(sfn_make, ASGS)
    assert caps["qa-a"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-b"] == {"desired": 3, "min": 0, "max": 10, "instances": 3}
    assert lock_body(sfn_make) is None
    [key] = archived_runs(sfn_make)
    saved = parse(sfn_make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    assert saved is not None and saved.status == "done" and saved.environment == "qa"


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("lbs", [{"classic_elb": True}, {"classic_elb": True, "target_groups": 2}],
                         ids=["classic-elb", "elb-and-2-target-groups"])
def test_deployment_waits_for_the_discovered_load_balancers(sfn_make, engine_name, lbs):
    """ELB (and target groups) discovered from qa-b: qa-b's 3 instances serve in each, qa-a 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, bucket=BUCKET, **lbs)
    assert ENGINES[engine_name](settings_for(instance_count=3, no_elb_check=False)) == 0
    new = set(instance_ids(sfn_make, "qa-b"))
    assert len(new) == 3 and capacities(sfn_make, ASGS)["qa-a"]["desired"] == 0
    assert elb_states(sfn_make, "qa-public") == {i: "InService" for i in new}
    assert lock_body(sfn_make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_stepped_deployment_raising_max_size_ends_the_same(sfn_make, engine_name):
    """--instance-count 5 --instance-count-step 2 over MaxSize 4: qa-b scaled 2, 4, 5 (MaxSize
    raised to 5), qa-a 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, max_size=4, classic_elb=False,
              bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count=5, instance_count_step=2)) == 0
    assert SCALED == [2, 4, 5]
    caps = capacities(sfn_make, ASGS)
    assert caps["qa-b"] == {"desired": 5, "min": 0, "max": 5, "instances": 5}
    assert caps["qa-a"]["desired"] == 0
    assert lock_body(sfn_make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_lock_held_is_refused_and_left_alone(sfn_make, engine_name):
    """ENV.lock already there: exit 3, the lock's bytes untouched, no ASG changed."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    sfn_make("s3").put_object(Bucket=BUCKET, Key="qa.lock", Body=b"held by hand\n")
    assert ENGINES[engine_name](settings_for(instance_count=3)) == 3
    assert lock_body(sfn_make) == b"held by hand\n"
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 0


@pytest.mark.parametrize("engine_name", ENGINES)
def test_both_populated_is_refused_and_the_lock_released(sfn_make, engine_name):
    """qa-a and qa-b both have instances: exit 3, nothing scaled, lock released."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    sfn_make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)
    assert ENGINES[engine_name](settings_for(instance_count=3)) == 3
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 1)
    assert lock_body(sfn_make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_zero_drains_the_active_asg_on_both_engines(sfn_make, engine_name):
    """--zero: qa-a (2) to 0, qa-b untouched, lock released, exit 0."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(zero=True)) == 0
    caps = capacities(sfn_make, ASGS)
    assert caps["qa-a"]["desired"] == 0 and caps["qa-b"]["desired"] == 0
    assert lock_body(sfn_make) is None


@pytest.mark.parametrize("engine_name", ENGINES)
def test_rollback_on_failure_scales_the_new_asg_back(sfn_make, frozen_world, engine_name):
    """Instances never ready, --rollback-on-failure: exit 1, qa-b back to 0, qa-a still 2,
    lock released."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert ENGINES[engine_name](settings_for(instance_count=2, rollback_on_failure=True)) == 1
    caps = capacities(sfn_make, ASGS)
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (2, 0)
    assert lock_body(sfn_make) is None


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
