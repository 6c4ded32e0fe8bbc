"""Step Functions: create or update a state machine, start an execution, read its end,
answer a task token (an approval) and find the state that waits for one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call, error_code
from abfsm.errors import AwsError

# SendTask* answers meaning "nothing waits for this token any more" (decided, timed out, ended).
_TOKEN_GONE = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}
_TASK_ENDED = {"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskStateExited",
               "TaskSubmitFailed", "TaskStartFailed"}


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    error: str | None = None
    cause: str | None = None
    waiting: str | None = None  # the state waiting for a task token, if one was looked for


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

    def describe(self, execution_arn: str) -> Execution:
        resp = call(self._client, "stepfunctions", "DescribeExecution",
                    executionArn=execution_arn)
        return Execution(execution_arn, str(resp["status"]), resp.get("error"), resp.get("cause"))

    def answer(self, token: str, *, output: str | None = None, error: str | None = None,
               cause: str | None = None) -> bool:
        """SendTaskSuccess (`output`) or SendTaskFailure (`error`, `cause`) for a task token;
        False when no execution waits for it any more (already answered, timed out, ended)."""
        try:
            if output is not None:
                call(self._client, "stepfunctions", "SendTaskSuccess", mutating=True,
                     log_params={"output": output}, taskToken=token, output=output)
            else:
                call(self._client, "stepfunctions", "SendTaskFailure", mutating=True,
                     log_params={"error": error, "cause": cause}, taskToken=token,
                     error=error or "", cause=cause or "")
        except AwsError as exc:
            if exc.__cause__ is not None and (error_code(exc.__cause__) or "") in _TOKEN_GONE:
                return False
            raise
        return True

    def waiting_for_token(self, execution_arn: str) -> str | None:
        """The state that waits for a task token now (a `.waitForTaskToken` task whose call
        was submitted and that has not ended), or None."""
        state: str | None = None
        waiting: str | None = None
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"nextToken": token} if token else {}
            page = call(self._client, "stepfunctions", "GetExecutionHistory",
                        executionArn=execution_arn, maxResults=1000, **extra)
            for event in page.get("events", []):
                kind = str(event.get("type", ""))
                submitted = event.get("taskSubmittedEventDetails") or {}
                if kind.endswith("StateEntered"):
                    state = str(event.get("stateEnteredEventDetails", {}).get("name", ""))
                elif (kind == "TaskSubmitted"
                      and str(submitted.get("resource", "")).endswith(".waitForTaskToken")):
                    waiting = state
                elif kind in _TASK_ENDED:
                    waiting = None
            token = page.get("nextToken")
            if not token:
                return waiting
