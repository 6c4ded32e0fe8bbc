"""The `approval` state compiled to Amazon States Language (no AWS): a waitForTaskToken task
writing the lock record with the token, its timeout, and where each ending leads; and
`sfn start --pause-at-approval`'s own check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from abfsm.actions import ACTIONS
from abfsm.cli import main
from abfsm.sfn.compiler import compile_spec
from abfsm.sfn.engine import role_policy
from abfsm.sfn.fragments import NOW
from abfsm.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples/specs/manual-approval.yaml"


def _compiled(path: Path = SPEC) -> dict[str, Any]:
    return compile_spec(load_spec(str(path), ACTIONS))["States"]


def test_approval_is_a_put_of_the_lock_record_waiting_for_its_task_token():
    """putObject.waitForTaskToken on ENV.lock, IfMatch on the tracked ETag; the body is the
    run record with an `approval` object carrying $$.Task.Token and what is decided."""
    task = _compiled()["approval.act"]  # after the entry that saves the record
    assert task["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject.waitForTaskToken"
    params = task["Parameters"]
    assert params["IfMatch.$"] == "$.lock.etag"
    assert params["Key.$"] == "States.Format('{}.lock', $.settings.environment)"
    body = params["Body"]
    assert body["kind"] == "abfsm.run" and body["engine"] == "stepfunctions"
    assert body["state"] == "approval" and body["status"] == "running"
    request = body["approval"]
    assert request["task_token.$"] == "$$.Task.Token"
    assert request["status"] == "pending" and request["state"] == "approval"
    assert request["what"] == "approval: approve -> drain, reject -> rollback"
    assert request["requested_at.$"] == NOW


def test_approved_tracks_the_etag_the_approver_sent_and_goes_on_to_drain():
    """The SendTaskSuccess output's etag becomes $.lock.etag, then the `approved` route."""
    states = _compiled()
    assert states["approval.act"]["Next"] == "approval.approved"
    assert states["approval.approved"]["Parameters"] == {"etag.$": "$.approval.etag"}
    assert states["approval.approved"]["ResultPath"] == "$.lock"
    assert states["approval.approved"]["Next"] == "approval.on-approved"
    assert states["approval.on-approved"]["Next"] == "drain"


def test_rejected_and_timeout_resync_the_lock_then_route_as_the_spec_says():
    """Any failure of the wait reads the lock back (ours: its ETag tracked; else the run
    stops, as when a save finds its lock gone), then
    abfsm.Rejected -> rollback (`rejected`), States.Timeout -> abfsm.WaitTimeout -> the
    state's error route."""
    states = _compiled()
    assert [c["Next"] for c in states["approval.act"]["Catch"]] == ["approval.resync"]
    assert states["approval.resync"]["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
    assert states["approval.track"]["Parameters"] == {"etag.$": "$.found.etag"}
    why = {c["StringEquals"]: c["Next"] for c in states["approval.why?"]["Choices"]}
    assert why == {"abfsm.Rejected": "approval.on-rejected", "States.Timeout": "approval.timed-out"}
    assert states["approval.on-rejected"]["Next"] == "rollback"
    assert states["approval.why?"]["Default"] == "approval.error"
    timed_out = states["approval.timed-out"]["Parameters"]
    assert timed_out == {"Error": "abfsm.WaitTimeout", "Cause": "no decision after 3600 s"}
    assert states["approval.lost"]["Parameters"]["Error"] == "abfsm.LockLost"
    assert states["approval.lost"]["Next"] == "approval.lock-lost"  # the run stops


def test_the_timeout_is_the_tasks_timeout_seconds(tmp_path):
    """timeout: 3600 -> TimeoutSeconds 3600; a timeout naming a setting reads the execution
    input's whole seconds (TimeoutSecondsPath)."""
    assert _compiled()["approval.act"]["TimeoutSeconds"] == 3600
    named = SPEC.read_text().replace("timeout: 3600", "timeout: health_check_timeout")
    path = tmp_path / "named-timeout.yaml"
    path.write_text(named)
    task = _compiled(path)["approval.act"]
    assert "TimeoutSeconds" not in task
    assert task["TimeoutSecondsPath"] == "$.limits.seconds.health_check_timeout"


def test_role_policy_names_the_calls_not_the_integration_pattern():
    """putObject.waitForTaskToken needs s3:PutObject; the resync s3:GetObject."""
    spec = load_spec(str(SPEC), ACTIONS)
    [lock] = [s for s in role_policy(spec, "qa-locks")["Statement"] if s["Sid"] == "AbfsmLock"]
    assert lock["Action"] == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]


def test_pause_at_approval_without_wait_is_refused_before_any_aws_call(capsys):
    """--pause-at-approval only stops a follower: without --wait, exit 2 (a dead endpoint
    proves no AWS call was made)."""
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:abfsm"
    assert main(["sfn", "start", "--state-machine-arn", arn, "--environment", "qa",
                 "--lock-bucket-name", "qa-locks", "--no-elb-check", "--pause-at-approval",
                 "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"]) == 2
    assert "--pause-at-approval" in capsys.readouterr().err
