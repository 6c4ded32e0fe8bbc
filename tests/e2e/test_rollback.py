"""--rollback-on-failure, end to end: a new ASG that never becomes healthy is scaled back."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env, capacities, elb_states, instance_ids
from tests.support.crash_cli import Records, reap, start

BUCKET = "qa-locks"


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A background CLI a failed test left running is killed, not left polling."""
    yield
    reap()


def test_rollback_on_failure_scales_the_new_asg_back_and_frees_the_environment(make, server,
                                                                               tmp_path):
    """wait-elb times out: qa-b back to 0 (MinSize 0), qa-a serving as before, no lock, exit 1."""
    build_env(make, "qa", active="a", active_count=4, active_min=2, bucket=BUCKET)
    old_ids = instance_ids(make, "qa-a")
    recs = Records(make, "qa", bucket=BUCKET)
    # The new instances come up stopped (OutOfService); the virtual clock runs out the
    # 600 s health-check timeout at once.
    run = start(cli_env(server), tmp_path, "deploy", "--environment", "qa", "--elb-name",
                "qa-public", "--instance-count", "3", "--update-timeout", "30",
                "--lock-bucket-name", BUCKET, "--rollback-on-failure",
                extra_env={"ABFSM_TEST_NEW_INSTANCES": "stopped", "ABFSM_VIRTUAL_CLOCK": "1"})

    assert run.finish() == 1, run.stderr
    caps = capacities(make, ["qa-a", "qa-b"])
    assert caps["qa-b"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-a"] == {"desired": 4, "min": 2, "max": 10, "instances": 4}
    assert instance_ids(make, "qa-a") == old_ids
    assert {i: s for i, s in elb_states(make, "qa-public").items() if i in old_ids} == {
        i: "InService" for i in old_ids}
    assert recs.lock() is None
    run_id = run.named("run.started")[0]["run_id"]
    final = recs.archived()[run_id]
    assert (final["status"], final["failed_state"], final["exit_code"]) == (
        "rolled-back", "wait-elb", 1)
    assert "wait-elb: 0/3 InService in qa-public after 600 s" in final["last_error"]
    assert [(e["src"], e["dst"]) for e in run.named("transition")][-2:] == [
        ("wait-elb", "rollback"), ("rollback", "rolled-back")]
    assert [e["params"]["AutoScalingGroupName"] for e in run.named("aws.call")
            if e["service"] == "autoscaling"] == ["qa-b", "qa-b"]  # scale up, then back to 0
