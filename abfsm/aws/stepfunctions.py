"""Step Functions: create or update a state machine, start an execution, read its end and
its history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from abfsm.aws._call import call, error_code
from abfsm.errors import AwsError


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class HistoryEvent:
    """One event of an execution's history, with what abfsm reads of it.

    `name`: the state entered or exited; `data`: its input (entered) or output (exited), a
    task's parameters (TaskScheduled) or output (TaskSucceeded), or the execution's input
    (ExecutionStarted), as JSON text; `resource`: a task's `aws-sdk:SERVICE:api`; `error` and
    `cause`: of a failure event.
    """

    id: int
    type: str
    timestamp: datetime
    name: str | None = None
    data: str | None = None
    resource: str | None = None
    error: str | None = None
    cause: str | None = None


def history_event(raw: Mapping[str, Any]) -> HistoryEvent:
    """A GetExecutionHistory event (as boto3 returns it) as a HistoryEvent."""
    details: Mapping[str, Any] = next(
        (v for k, v in raw.items() if k.endswith("EventDetails") and isinstance(v, Mapping)), {})
    stamp = raw.get("timestamp")
    if not isinstance(stamp, datetime):
        stamp = datetime.fromisoformat(str(stamp)) if stamp else datetime.now(timezone.utc)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    data = next((details[k] for k in ("input", "output", "parameters") if k in details), None)
    resource = None
    if details.get("resourceType"):
        resource = f"{details['resourceType']}:{details.get('resource', '')}"
    return HistoryEvent(int(raw["id"]), str(raw["type"]), stamp, details.get("name"),
                        None if data is None else str(data), resource,
                        details.get("error"), details.get("cause"))


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

    def history(self, execution_arn: str, after: int = 0) -> list[HistoryEvent]:
        """The execution's events after event id `after`, oldest first.

        Read newest first (reverseOrder), page by page, until a page reaches `after`: a poll
        reads only what is new however long the history is (in pages of 100 after the first
        read: an event can carry 256 KB of state data).
        """
        token: str | None = None
        found: dict[int, HistoryEvent] = {}
        while True:
            extra: dict[str, Any] = {"nextToken": token} if token else {}
            page = call(self._client, "stepfunctions", "GetExecutionHistory",
                        executionArn=execution_arn, reverseOrder=True,
                        maxResults=1000 if not after else 100, **extra)
            events = [history_event(e) for e in page.get("events", [])]
            found.update({e.id: e for e in events if e.id > after})
            token = page.get("nextToken")
            if not token or any(e.id <= after for e in events):
                return [found[i] for i in sorted(found)]

    def definition_for(self, execution_arn: str) -> str:
        """The definition (ASL text) of the state machine version the execution runs."""
        resp = call(self._client, "stepfunctions", "DescribeStateMachineForExecution",
                    executionArn=execution_arn)
        return str(resp["definition"])
