"""CloudWatch alarms: one DescribeAlarms call for a set of alarms (by names or by a prefix)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from abfsm.aws._call import call

# DescribeAlarms takes at most 100 names per call.
MAX_NAMES = 100
ALARM_TYPES = ["MetricAlarm", "CompositeAlarm"]


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str  # OK, ALARM or INSUFFICIENT_DATA
    reason: str = ""  # StateReason: why it is in that state
    since: str = ""  # StateUpdatedTimestamp, ISO 8601 UTC (2026-01-01T12:00:00Z)

    @property
    def firing(self) -> bool:
        return self.state == "ALARM"


class CloudWatch:
    def __init__(self, client: Any) -> None:
        self._client = client

    def alarms(self, *, names: Sequence[str] = (), prefix: str | None = None) -> list[Alarm]:
        """The named alarms, or those whose name starts with `prefix`, in one DescribeAlarms.

        Exactly one of `names` / `prefix` (the API takes one or the other). A missing name
        is simply absent from the answer. More pages are only read when AWS returns a
        NextToken, which a set of up to 100 alarms does not need.
        """
        if bool(names) == bool(prefix):
            raise ValueError("alarms(): give either names or a prefix")
        if len(names) > MAX_NAMES:
            raise ValueError(f"at most {MAX_NAMES} alarm names per call")
        params: dict[str, Any] = {"AlarmTypes": ALARM_TYPES, "MaxRecords": 100}
        if names:
            params["AlarmNames"] = list(names)
        else:
            params["AlarmNamePrefix"] = prefix
        out: list[Alarm] = []
        while True:
            resp = call(self._client, "cloudwatch", "DescribeAlarms", **params)
            for kind in ("MetricAlarms", "CompositeAlarms"):
                out.extend(_alarm(a) for a in resp.get(kind, []) or [])
            token = resp.get("NextToken")
            if not token:
                return out
            params["NextToken"] = token


def _alarm(a: dict[str, Any]) -> Alarm:
    since: Any = a.get("StateUpdatedTimestamp")
    if hasattr(since, "astimezone"):
        since = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Alarm(a["AlarmName"], str(a.get("StateValue", "INSUFFICIENT_DATA")),
                 str(a.get("StateReason", "") or ""), str(since or ""))
