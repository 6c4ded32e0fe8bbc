"""The one place that reads the time and sleeps. Everything that waits takes a Clock."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol

from abfsm.errors import Interrupted


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC (for records and heartbeats)."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (for timeouts and elapsed times)."""

    def sleep(self, seconds: float) -> None:
        """Sleep; raise Interrupted if a stop was requested before or during the sleep."""

    def check_stop(self) -> None:
        """Raise Interrupted if a stop was requested."""


class SystemClock:
    """Real time. `request_stop()` (called from a signal handler) wakes a sleep at once."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.stop_reason = ""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.check_stop()
        if self._stop.wait(max(0.0, seconds)):
            self.check_stop()

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop.set()

    def check_stop(self) -> None:
        if self._stop.is_set():
            raise Interrupted(f"stopped by {self.stop_reason or 'request'}")


def utc_iso(moment: datetime) -> str:
    """ISO 8601 with a Z suffix, second precision: what records and logs show."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
