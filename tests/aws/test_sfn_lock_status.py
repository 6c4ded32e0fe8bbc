"""`abfsm status` of an environment a Step Functions execution holds names the engine and
the execution, in text and JSON."""

from __future__ import annotations

import json

from abfsm import admin
from abfsm.aws import connect
from abfsm.context import Settings
from tests.support.aws_env import CREDENTIALS, REGION, build_env
from tests.support.sfn_moto import BUCKET, run_sfn, settings_for


def test_status_of_a_failed_execution_names_its_engine_and_execution(sfn_make, frozen_world):
    """A failed execution keeps the lock: status says `engine Step Functions, execution
    arn:aws:states:...` and the JSON carries engine and execution_arn."""
    build_env(sfn_make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
    assert run_sfn(settings_for(instance_count=2)) == 1
    services = connect(region=REGION, credentials=CREDENTIALS)
    settings = Settings("qa", lock_bucket_name=BUCKET)
    text = admin.status(settings, services=services)
    [line] = [x for x in text.splitlines() if x.lstrip().startswith("engine")]
    assert line.split()[1:3] == ["Step", "Functions,"]
    data = json.loads(admin.status(settings, fmt="json", services=services))
    current = data["current"]
    assert current["engine"] == "stepfunctions"
    assert current["execution_arn"].startswith("arn:aws:states:") and current["execution_arn"] in line
