"""An execution started by anything but `abfsm sfn start` (EventBridge, API Gateway, the
console: here boto3's StartExecution) with a minimal input: the machine fills the rest and
refuses what it cannot run (moto's ASL interpreter, in process; tests/support/sfn_moto.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from abfsm.aws.stepfunctions import Execution
from abfsm.clock import parse_utc
from abfsm.context import Settings
from abfsm.errors import UsageError
from abfsm.record import parse
from abfsm.sfn import engine
from tests.support.aws_env import REGION, build_env, capacities
from tests.support.sfn_moto import ASGS, BUCKET, ROLE, archived_runs, cli, lock_body

Make = Callable[[str], Any]


def _machine() -> str:
    code, arn = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE, "--region", REGION)
    assert code == 0, arn
    return arn


def _run(make: Make, document: dict[str, Any], name: str) -> tuple[dict[str, Any], list[Any]]:
    """StartExecution with `document` as it is, followed to its end: (describe, history)."""
    sfn = make("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=_machine(), name=name,
                              input=json.dumps(document))["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still RUNNING after 60 s"
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return described, history


def test_a_minimal_input_deploys_like_sfn_start(sfn_make):
    """settings with environment, lock bucket, instance_count 2, no_elb_check (plus 1 s
    limits): qa-b 2 instances, qa-a 0, lock released, the record archived under the
    execution's name, started at the execution's start time, every other setting its default."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    document = {"settings": {"environment": "qa", "lock_bucket_name": BUCKET,
                             "instance_count": 2, "no_elb_check": True},
                "limits": {"interval": 1, "polls": 3}}
    described, _ = _run(sfn_make, document, "from-eventbridge-1")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    caps = capacities(sfn_make, ASGS)
    assert caps["qa-a"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-b"] == {"desired": 2, "min": 0, "max": 10, "instances": 2}
    assert lock_body(sfn_make) is None
    assert archived_runs(sfn_make) == ["qa/runs/from-eventbridge-1.json"]
    body = sfn_make("s3").get_object(Bucket=BUCKET, Key="qa/runs/from-eventbridge-1.json")["Body"]
    saved, why = parse(body.read())
    assert saved is not None, why
    assert (saved.run_id, saved.status, saved.environment) == ("from-eventbridge-1", "done", "qa")
    assert saved.settings == Settings("qa", lock_bucket_name=BUCKET, instance_count=2,
                                      no_elb_check=True).to_dict()
    assert parse_utc(saved.started_at) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("settings, field", [
    ({"lock_bucket_name": BUCKET, "instance_count": 2}, "settings.environment"),
    ({"environment": "qa", "lock_bucket_name": 7}, "settings.lock_bucket_name"),
    ({"environment": "qa", "lock_bucket_name": BUCKET, "dry_run": True}, "settings.dry_run"),
    ({"environment": "qa", "lock_bucket_name": BUCKET, "image_id": "ami-12c6146b"},
     "settings.image_id: --image-id needs ec2:CreateLaunchTemplateVersion"),
], ids=["no-environment", "bucket-not-a-string", "dry-run", "image-id"])
def test_an_unusable_input_fails_naming_the_field_and_changes_nothing(sfn_make, settings, field):
    """FAILED abfsm.InvalidInput (exit 2) naming the field, before any task: no lock, no
    record, no ASG changed."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    described, history = _run(sfn_make, {"settings": settings}, "bad-input")
    assert (described["status"], described["error"]) == ("FAILED", "abfsm.InvalidInput")
    assert described["cause"].startswith(f"execution input: {field}")
    assert [e for e in history if e["type"] == "TaskScheduled"] == []
    assert lock_body(sfn_make) is None and archived_runs(sfn_make) == []
    assert capacities(sfn_make, ASGS)["qa-b"]["desired"] == 0
    with pytest.raises(UsageError) as caught:
        engine.outcome(Execution(described["executionArn"], described["status"],
                                 described["error"], described["cause"]))
    assert caught.value.exit_code == 2


def test_partial_limits_are_refused(sfn_make):
    """limits without polls: FAILED abfsm.InvalidInput naming limits, no task run."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    described, history = _run(sfn_make, {"settings": {"environment": "qa",
                                                      "lock_bucket_name": BUCKET},
                                         "limits": {"interval": 1}}, "bad-limits")
    assert (described["status"], described["error"]) == ("FAILED", "abfsm.InvalidInput")
    assert described["cause"].startswith("execution input: limits")
    assert [e for e in history if e["type"] == "TaskScheduled"] == []
