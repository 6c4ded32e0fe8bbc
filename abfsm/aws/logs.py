"""CloudWatch Logs: a log group, a stream in it, and batches of lines put in order."""

from __future__ import annotations

from typing import Any

from abfsm.aws._call import call, error_code
from abfsm.errors import AwsError

_EXISTS = "ResourceAlreadyExistsException"


class LogStreams:
    def __init__(self, client: Any) -> None:
        self._client = client

    def create_group(self, group: str) -> bool:
        """Create the group; False if it already existed."""
        return self._create("CreateLogGroup", logGroupName=group)

    def create_stream(self, group: str, stream: str) -> bool:
        """Create the stream; False if it already existed (a resumed run appends to it)."""
        return self._create("CreateLogStream", logGroupName=group, logStreamName=stream)

    def put(self, group: str, stream: str, events: list[tuple[int, str]]) -> int:
        """PutLogEvents of (timestamp ms, message) pairs, in order; returns how many were rejected."""
        resp = call(self._client, "logs", "PutLogEvents", mutating=True,
                    log_params={"logGroupName": group, "logStreamName": stream, "events": len(events)},
                    logGroupName=group, logStreamName=stream,
                    logEvents=[{"timestamp": ts, "message": msg} for ts, msg in events])
        info = resp.get("rejectedLogEventsInfo") or {}
        rejected = 0
        if "tooNewLogEventStartIndex" in info:
            rejected += len(events) - int(info["tooNewLogEventStartIndex"])
        if "tooOldLogEventEndIndex" in info:
            rejected += int(info["tooOldLogEventEndIndex"]) + 1
        if "expiredLogEventEndIndex" in info:
            rejected = max(rejected, int(info["expiredLogEventEndIndex"]) + 1)
        return rejected

    def _create(self, action: str, **params: Any) -> bool:
        try:
            call(self._client, "logs", action, mutating=True, log_params=params, **params)
        except AwsError as exc:
            if exc.__cause__ is not None and error_code(exc.__cause__) == _EXISTS:
                return False
            raise
        return True
