"""What every sink is: a kind, a redacted target, `open()` and `deliver(batch)`.

Sinks do their I/O only in `open`/`deliver`, which run on the sink's own worker thread
(abfsm/notify/worker.py), never on the state machine's. A delivery that did not arrive
raises DeliveryError with a reason that names no secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol


class DeliveryError(Exception):
    """A delivery failed (after its retries); the message is the reason shown in notify.failed."""


@dataclass(frozen=True)
class Item:
    """One log event to deliver, with the run's `run.started` event for context (Slack's
    message names who started the run)."""

    event: dict[str, Any]
    started: dict[str, Any] | None = None


class Sink(Protocol):
    kind: str
    target: str  # redacted (a URL by host only)
    batch_size: int  # how many queued items one deliver() may take

    def open(self) -> None:
        """Prepare (create a log stream, connect a socket); may raise."""

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        """Deliver the items in order; raise DeliveryError if any did not arrive."""

    def close(self) -> None:
        """Release sockets and pools."""


def event_time(event: dict[str, Any]) -> datetime:
    """The event's `ts` as an aware datetime (now if missing or unreadable)."""
    ts = event.get("ts")
    if isinstance(ts, str):
        try:
            moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.now(timezone.utc)


def outcome_of(event: dict[str, Any]) -> str:
    """A one-word outcome for filters: started, failed, the run's outcome, pending, or the event."""
    name = str(event.get("event", ""))
    if name == "run.started":
        return "started"
    if name == "run.finished":
        return str(event.get("outcome", "finished"))
    if name == "state.failed":
        return "failed"
    if name == "approval.pending":
        return "pending"
    return name


def title(event_name: str) -> str:
    """`run.started` -> `Run Started` (EventBridge detail-types, message titles)."""
    return " ".join(w.capitalize() for w in event_name.replace("_", ".").split(".") if w)
