"""Step Functions: create or update a state machine, start an execution, read its end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call, error_code
from abfsm.errors import AwsError


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    error: str | None = None
    cause: str | None = None


class StateMachines:
    def __init__(self, client: Any) -> None:
        self._client = client

    def find(self, name: str) -> str | None:
        """The ARN of the state machine called `name`, or None."""
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"nextToken": token} if token else {}
            page = call(self._client, "stepfunctions", "ListStateMachines", **extra)
            for sm in page.get("stateMachines", []):
                if sm["name"] == name:
                    return str(sm["stateMachineArn"])
            token = page.get("nextToken")
            if not token:
                return None

    def create_or_update(self, name: str, definition: str, role_arn: str) -> tuple[str, bool]:
        """(ARN, created): created when absent, else its definition and role updated."""
        arn = self.find(name)
        if arn is None:
            resp = call(self._client, "stepfunctions", "CreateStateMachine", mutating=True,
                        log_params={"name": name, "roleArn": role_arn}, name=name,
                        definition=definition, roleArn=role_arn, type="STANDARD")
            return str(resp["stateMachineArn"]), True
        call(self._client, "stepfunctions", "UpdateStateMachine", mutating=True,
             log_params={"stateMachineArn": arn, "roleArn": role_arn}, stateMachineArn=arn,
             definition=definition, roleArn=role_arn)
        return arn, False

    def start(self, arn: str, name: str, document: str) -> str:
        resp = call(self._client, "stepfunctions", "StartExecution", mutating=True,
                    log_params={"stateMachineArn": arn, "name": name},
                    stateMachineArn=arn, name=name, input=document)
        return str(resp["executionArn"])

    def start_unless_taken(self, arn: str, name: str, document: str) -> str | None:
        """Start an execution called `name`; None when the machine already has one by that
        name (ExecutionAlreadyExists: pick another)."""
        try:
            return self.start(arn, name, document)
        except AwsError as exc:
            if exc.__cause__ is not None and error_code(exc.__cause__) == "ExecutionAlreadyExists":
                return None
            raise

    def describe(self, execution_arn: str) -> Execution:
        resp = call(self._client, "stepfunctions", "DescribeExecution",
                    executionArn=execution_arn)
        return Execution(execution_arn, str(resp["status"]), resp.get("error"), resp.get("cause"))
