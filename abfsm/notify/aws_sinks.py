"""AWS sinks: SNS topics, EventBridge buses, CloudWatch Logs streams (boto3 through the
adapters in abfsm/aws, with the short timeouts and single retry of NOTIFY_RETRIES)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from abfsm.aws import Services
from abfsm.aws.events import EventEntry
from abfsm.errors import AbfsmError
from abfsm.log import json_line
from abfsm.notify.base import DeliveryError, Item, event_time, outcome_of, title
from abfsm.notify.parse import SinkSpec

SOURCE = "abfsm"
_MAX_LOG_BATCH_BYTES = 900_000  # PutLogEvents allows 1,048,576 (each event counts 26 more)
_MAX_LOG_EVENT = 250_000  # bytes; a longer line is cut
_MAX_ENTRY = 250_000  # bytes of an EventBridge entry's Detail


def detail_type(event_name: str) -> str:
    """`run.started` -> `abfsm Run Started`; `approval.pending` -> `abfsm Approval Pending`."""
    return f"abfsm {title(event_name)}"


def subject(event: dict[str, Any]) -> str:
    """A short SNS subject (ASCII, at most 100 characters)."""
    env, name = event.get("env", "?"), str(event.get("event"))
    if name == "run.finished":
        where = f" in {event['failed_state']}" if event.get("failed_state") and event.get("outcome") != "done" else ""
        text = f"abfsm {env}: {event.get('outcome')}{where} (exit {event.get('exit_code')})"
    elif name == "run.started":
        text = f"abfsm {env}: {event.get('command', 'deploy')} started"
    elif name == "state.failed":
        text = f"abfsm {env}: {event.get('state')} failed"
    else:
        text = f"abfsm {env}: {name}"
    return text.encode("ascii", "replace").decode()[:100]


class _AwsSink:
    batch_size = 1

    def __init__(self, spec: SinkSpec, connect: Callable[[SinkSpec], Services]) -> None:
        self.kind, self.target = spec.kind, spec.shown_target
        self._spec = spec
        self._connect = connect
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:  # created on the worker thread: a session per sink
            self._services = self._connect(self._spec)
        return self._services

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class SnsSink(_AwsSink):
    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        for item in batch:
            e = item.event
            try:
                self.services.sns.publish(self._spec.target, subject(e), json_line(e),
                                          {"environment": str(e.get("env", "")),
                                           "outcome": outcome_of(e), "event": str(e.get("event"))})
            except AbfsmError as exc:
                raise DeliveryError(str(exc)) from None


class EventsSink(_AwsSink):
    batch_size = 10  # PutEvents takes at most 10 entries

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        entries = [EventEntry(SOURCE, detail_type(str(i.event.get("event"))),
                              json_line(i.event)[:_MAX_ENTRY], self._spec.target)
                   for i in batch]
        try:
            result = self.services.events.put(entries)
        except AbfsmError as exc:
            raise DeliveryError(str(exc)) from None
        if result.failed:
            raise DeliveryError(f"{result.failed} of {len(entries)} event(s) not put: "
                                + "; ".join(result.errors[:3]))


class LogsSink(_AwsSink):
    """Every log line, in order, to GROUP/STREAM (STREAM defaults to the run_id)."""

    batch_size = 1000

    def __init__(self, spec: SinkSpec, connect: Callable[[SinkSpec], Services], *,
                 create_group: bool = False) -> None:
        super().__init__(spec, connect)
        self._group = spec.log_group
        self._stream = spec.log_stream
        self._create_group = create_group
        self._ready = False
        self._last_ms = 0

    def open(self) -> None:
        if self._create_group:
            self._call(lambda: self.services.logs.create_group(self._group))

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        if self._stream is None:
            self._stream = next((str(i.event["run_id"]) for i in batch if i.event.get("run_id")), "abfsm")
        if not self._ready:
            self._call(lambda: self.services.logs.create_stream(self._group, str(self._stream)))
            self._ready = True
        chunk: list[tuple[int, str]] = []
        size = 0
        for item in batch:
            line = json_line(item.event)[:_MAX_LOG_EVENT]
            # CloudWatch wants non-decreasing timestamps within a batch; lines from two threads
            # can be stamped a microsecond out of order.
            ms = max(self._last_ms, int(event_time(item.event).timestamp() * 1000))
            self._last_ms = ms
            cost = len(line.encode()) + 26
            if chunk and size + cost > _MAX_LOG_BATCH_BYTES:
                self._put(chunk)
                chunk, size = [], 0
            chunk.append((ms, line))
            size += cost
        if chunk:
            self._put(chunk)

    def _put(self, chunk: list[tuple[int, str]]) -> None:
        rejected = self._call(lambda: self.services.logs.put(self._group, str(self._stream), chunk))
        if rejected:
            raise DeliveryError(f"CloudWatch Logs rejected {rejected} of {len(chunk)} line(s)")

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except AbfsmError as exc:
            text = str(exc)
            if "ResourceNotFoundException" in text and not self._create_group:
                text += " (create the log group, or pass --notify-create)"
            raise DeliveryError(text) from None
