"""EventBridge: put events on a bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abfsm.aws._call import call


@dataclass(frozen=True)
class EventEntry:
    source: str
    detail_type: str
    detail: str  # a JSON object, as text
    bus: str  # a bus name ("default") or ARN


@dataclass(frozen=True)
class PutResult:
    failed: int
    errors: tuple[str, ...]  # "Code: Message" of each failed entry


class EventBus:
    def __init__(self, client: Any) -> None:
        self._client = client

    def put(self, entries: list[EventEntry]) -> PutResult:
        """One PutEvents call (at most 10 entries); per-entry failures are returned, not raised."""
        resp = call(self._client, "events", "PutEvents", mutating=True,
                    log_params={"EventBusName": sorted({e.bus for e in entries}),
                                "DetailTypes": [e.detail_type for e in entries]},
                    Entries=[{"Source": e.source, "DetailType": e.detail_type, "Detail": e.detail,
                              "EventBusName": e.bus} for e in entries])
        errors = tuple(f"{r.get('ErrorCode')}: {r.get('ErrorMessage')}"
                       for r in resp.get("Entries", []) if r.get("ErrorCode"))
        return PutResult(int(resp.get("FailedEntryCount", 0)), errors)
