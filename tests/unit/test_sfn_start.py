"""`abfsm sfn start` / `deploy` / `role-policy`: what is refused before any AWS call, the
execution input, and how an execution's end maps to exit codes (no AWS)."""

from __future__ import annotations

import json

import pytest

from abfsm.aws.stepfunctions import Execution
from abfsm.cli import main
from abfsm.context import Settings
from abfsm.errors import AbfsmError, Refused, StateFailed
from abfsm.sfn import engine

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:abfsm"
# A dead endpoint: any AWS call would fail with a connection error, not exit 2.
DEAD = ["--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"]
START = ["sfn", "start", "--state-machine-arn", ARN, "--environment", "qa", *DEAD]


@pytest.mark.parametrize("flags, says", [
    (["--no-elb-check"], "--lock-bucket-name is required"),
    (["--lock-bucket-name", "locks", "--no-elb-check", "--dry-run"], "abfsm deploy --dry-run"),
    (["--lock-bucket-name", "locks", "--image-id", "ami-12345678"], "create the version first"),
    (["--lock-bucket-name", "locks", "--no-elb-check", "--pause-at-approval"],
     "--pause-at-approval stops following"),  # it needs --wait
    (["--lock-bucket-name", "locks", "--no-elb-check", "--instance-count", "2",
      "--instance-count-match"], "exclude each other"),
])
def test_start_refuses_bad_input_with_exit_2(flags, says, capsys):
    """Missing lock bucket, --dry-run, flags the preview cannot run, the deploy's own
    cross-flag checks: exit 2 with one line naming the problem."""
    assert main([*START, *flags]) == 2
    assert says in capsys.readouterr().err


def test_start_refuses_a_malformed_state_machine_arn(capsys):
    """A --state-machine-arn that is not one exits 2 naming it."""
    assert main(["sfn", "start", "--state-machine-arn", "arn:aws:states:us-east-1:1:nope",
                 "--environment", "qa", "--lock-bucket-name", "locks", "--no-elb-check",
                 *DEAD]) == 2
    assert "is not a state machine ARN" in capsys.readouterr().err


def test_deploy_refuses_a_malformed_role_arn(capsys):
    """--role-arn must be an IAM role ARN: exit 2, no AWS call."""
    assert main(["sfn", "deploy", "--name", "abfsm", "--role-arn", "role/x", *DEAD]) == 2
    assert "is not an IAM role ARN" in capsys.readouterr().err


def test_execution_input_carries_the_flags_and_the_wait_limits():
    """interval = --update-timeout (whole seconds), polls = timeout / interval + 1, bake =
    --bake-time rounded up to whole seconds (only with a --bake-time), and the timeouts a
    state may name in whole seconds (an approval's TimeoutSecondsPath)."""
    doc = engine.execution_input(Settings("qa", update_timeout=30, health_check_timeout=600,
                                          bake_time=90.5), "RUN", "2026-01-01T00:00:00Z")
    assert doc["limits"] == {"interval": 30, "polls": 21, "bake": 91,
                             "seconds": {"bake_time": 91, "health_check_timeout": 600}}
    assert "bake" not in engine.execution_input(Settings("qa"), "RUN", "T")["limits"]
    assert doc["settings"]["environment"] == "qa" and doc["run_id"] == "RUN"


def test_role_policy_names_the_calls_and_scopes_s3_to_the_bucket(capsys):
    """One statement for the ASG and load balancer calls, one for the lock objects in the bucket."""
    assert main(["sfn", "role-policy", "--lock-bucket-name", "locks"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["Version"] == "2012-10-17"
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["AbfsmAsgsAndLoadBalancers"]["Action"] == [
        "autoscaling:DescribeAutoScalingGroups", "autoscaling:ResumeProcesses",
        "autoscaling:SuspendProcesses", "autoscaling:UpdateAutoScalingGroup",
        "elasticloadbalancing:DescribeInstanceHealth", "elasticloadbalancing:DescribeTargetHealth"]
    assert by_sid["AbfsmLock"] == {"Sid": "AbfsmLock", "Effect": "Allow",
                                   "Action": ["s3:DeleteObject", "s3:PutObject"],
                                   "Resource": "arn:aws:s3:::locks/*"}


def test_role_policy_reads_alarms_when_the_spec_watches_them(tmp_path, capsys):
    """The packaged spec's waits can watch alarms: cloudwatch:DescribeAlarms on "*" in its own
    statement; a spec without inspect, waits or bake has none."""
    assert main(["sfn", "role-policy"]) == 0
    by_sid = {s["Sid"]: s for s in json.loads(capsys.readouterr().out)["Statement"]}
    assert by_sid["AbfsmAlarms"] == {"Sid": "AbfsmAlarms", "Effect": "Allow",
                                     "Action": ["cloudwatch:DescribeAlarms"], "Resource": "*"}
    spec = tmp_path / "drain-only.yaml"
    spec.write_text("version: 1\ninitial: locked\nstates:\n  locked: {action: acquire_lock}\n"
                    "  drain: {action: drain}\n  done: {final: true, exit: 0, result: success}\n"
                    "  failed: {final: true, exit: 1, result: failure, keeps_lock: true}\n"
                    "  refused: {final: true, exit: 3, result: failure}\n"
                    "transitions:\n  - {trigger: acquired, source: locked, dest: drain}\n"
                    "  - {trigger: refuse, source: locked, dest: refused}\n"
                    "  - {trigger: drained, source: drain, dest: done}\n"
                    "  - {trigger: fail, source: '*', dest: failed}\n", encoding="utf-8")
    assert main(["sfn", "role-policy", "--spec", str(spec)]) == 0
    sids = [s["Sid"] for s in json.loads(capsys.readouterr().out)["Statement"]]
    assert "AbfsmAlarms" not in sids


@pytest.mark.parametrize("error, raised, code", [
    ("abfsm.Refused", Refused, 3), ("abfsm.StateFailed", StateFailed, 1),
    ("abfsm.RolledBack", StateFailed, 1)])
def test_a_failed_execution_raises_the_error_of_its_exit_code(error, raised, code):
    """FAILED with abfsm.Refused -> exit 3; StateFailed / RolledBack -> exit 1, the cause as message."""
    with pytest.raises(raised) as caught:
        engine.outcome(Execution("arn", "FAILED", error, "inspect: because"))
    assert caught.value.exit_code == code and str(caught.value) == "inspect: because"


def test_a_succeeded_execution_is_exit_0():
    """SUCCEEDED raises nothing; an aborted one is a failure."""
    assert engine.outcome(Execution("arn", "SUCCEEDED")) is None
    with pytest.raises(AbfsmError):
        engine.outcome(Execution("arn", "ABORTED"))
