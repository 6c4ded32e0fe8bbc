"""Test doubles shared by all tests: a clock that never really sleeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from abfsm.errors import Interrupted


class FakeClock:
    """`sleep` advances `now` and `monotonic` at once and records the sleep.

    `on_sleep(callback)` runs a callback after every sleep (e.g. to make instances healthy
    after N polls); `stop_after_sleeps(n)` makes the n-th sleep behave like SIGTERM.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
        self._mono = 1000.0
        self.sleeps: list[float] = []
        self.stop_reason = ""
        self._callbacks: list[Callable[[], None]] = []
        self._stop_at: int | None = None

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def sleep(self, seconds: float) -> None:
        self.check_stop()
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self._stop_at is not None and len(self.sleeps) >= self._stop_at:
            self.stop_reason = "SIGTERM"
        for callback in self._callbacks:
            callback()
        self.check_stop()

    def on_sleep(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def stop_after_sleeps(self, n: int) -> None:
        self._stop_at = n

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def check_stop(self) -> None:
        if self.stop_reason:
            raise Interrupted(f"stopped by {self.stop_reason}")


class FakeTicker:
    """Stands in for abfsm.log.Ticker: `advance(s)` moves its clock and fires each live tick.

    Records how many tickers were started and whether the latest one was stopped, so a test
    can tell a redraw from a ticker that should not be running at all.
    """

    interval = 1.0

    def __init__(self) -> None:
        self._now = 500.0
        self._ticks: list[tuple[Callable[[], None], list[bool]]] = []

    @property
    def started(self) -> int:
        return len(self._ticks)

    @property
    def running(self) -> bool:
        return any(not stopped[0] for _, stopped in self._ticks)

    def now(self) -> float:
        return self._now

    def start(self, tick: Callable[[], None]) -> Callable[[], None]:
        stopped = [False]
        self._ticks.append((tick, stopped))

        def stop() -> None:
            stopped[0] = True

        return stop

    def advance(self, seconds: float) -> None:
        """One tick per `interval` for every ticker not stopped."""
        steps = int(seconds / self.interval)
        for _ in range(steps):
            self._now += self.interval
            for tick, stopped in list(self._ticks):
                if not stopped[0]:
                    tick()

    def fire_late(self, *which: int) -> None:
        """Ticks once, stopped ones too (a thread already past its wait): all, or those started
        `which`-th (0 = the first)."""
        for n, (tick, _) in enumerate(list(self._ticks)):
            if not which or n in which:
                tick()
