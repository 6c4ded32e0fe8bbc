"""The one place that reads the time and sleeps. Everything that waits takes a Clock."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
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


# How many blocking calls (an AWS request, botocore's retries and their back-off sleeps) the
# main thread is in. A stop request (SIGINT/SIGTERM) that arrives during one cannot wait for
# the next poll: the signal handler raises at once (see abfsm.cli._install_signals).
_blocking_calls = 0


@contextlib.contextmanager
def blocking_call() -> Iterator[None]:
    """Mark a call during which a stop request must interrupt the main thread at once."""
    global _blocking_calls
    main = threading.current_thread() is threading.main_thread()
    if main:
        _blocking_calls += 1
    try:
        yield
    finally:
        if main:
            _blocking_calls -= 1


def in_blocking_call() -> bool:
    """True while the main thread is inside `blocking_call()` (read by the signal handler)."""
    return _blocking_calls > 0


def utc_iso(moment: datetime) -> str:
    """ISO 8601 with a Z suffix, second precision: what records and logs show."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


class VirtualClock(SystemClock):
    """Real wall-clock start, but `sleep` returns at once and advances virtual time.

    Selected with ABFSM_VIRTUAL_CLOCK=1 (a test hook: end-to-end tests run the CLI in a
    subprocess, where a 600 s wait must not take 600 s). Stop requests still work.
    """

    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0

    def now(self) -> datetime:
        from datetime import timedelta

        return super().now() + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return super().monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self.check_stop()
        self._offset += max(0.0, seconds)


def clock_from_env(environ: dict[str, str] | None = None) -> SystemClock:
    import os

    env = os.environ if environ is None else environ
    return VirtualClock() if env.get("ABFSM_VIRTUAL_CLOCK") == "1" else SystemClock()
