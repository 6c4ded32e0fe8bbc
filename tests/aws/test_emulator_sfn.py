"""The embedded emulator runs Step Functions executions in a thread too (`serve()`, what
`abfsm demo` and the examples start), and puts the process's settings back afterwards."""

from __future__ import annotations

import json
import os

import boto3

from abfsm.clock import SystemClock
from abfsm.emulator.server import serve

MACHINE = {"StartAt": "name", "States": {"name": {
    "Type": "Pass", "Parameters": {"name.$": "$$.Execution.Name"}, "End": True}}}


def test_an_execution_on_the_threaded_emulator_runs_its_own_states():
    """An execution's output is its Pass state's (its own name), not moto's canned history
    ("A State" / "An output"); MOTO_PORT is the server's while it runs and unset after."""
    before = os.environ.get("MOTO_PORT")
    with serve() as emulator:
        sfn = boto3.client("stepfunctions", region_name="us-east-1",
                           endpoint_url=emulator.endpoint, aws_access_key_id="x",
                           aws_secret_access_key="x")
        assert os.environ["MOTO_PORT"] == emulator.endpoint.rsplit(":", 1)[1]
        arn = sfn.create_state_machine(name="m", definition=json.dumps(MACHINE),
                                       roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")["executionArn"]
        clock = SystemClock()
        for _ in range(100):  # moto runs it in a thread: a few ms
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            clock.sleep(0.05)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"name": "run-1"}
    assert os.environ.get("MOTO_PORT") == before
