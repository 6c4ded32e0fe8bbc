"""`abfsm sfn deploy`: create the state machine, or update it in place (in-process moto)."""

from __future__ import annotations

import contextlib
import io
import json

from abfsm.cli import main
from abfsm.sfn.compiler import compile_spec
from abfsm.actions import ACTIONS
from abfsm.spec import load_spec
from tests.support.aws_env import REGION

ROLE = "arn:aws:iam::123456789012:role/abfsm-sfn"
OTHER_ROLE = "arn:aws:iam::123456789012:role/abfsm-sfn-2"


def _deploy(role: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["sfn", "deploy", "--name", "abfsm", "--role-arn", role, "--region", REGION])
    return code, out.getvalue()


def test_deploy_creates_then_updates_the_same_machine(aws):
    """Twice: one state machine, the same ARN printed, the second role and the compiled
    definition in place."""
    first = _deploy(ROLE)
    second = _deploy(OTHER_ROLE)
    assert first[0] == second[0] == 0
    assert first[1] == second[1] and first[1].startswith("arn:aws:states:")
    sfn = aws("stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == ["abfsm"]
    described = sfn.describe_state_machine(stateMachineArn=first[1].strip())
    assert described["roleArn"] == OTHER_ROLE
    assert json.loads(described["definition"]) == compile_spec(load_spec(None, ACTIONS))
