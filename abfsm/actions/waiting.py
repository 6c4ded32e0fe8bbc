"""The one waiting loop: poll at once, then every --update-timeout, until done or timeout.

`wait_until` waits for something to become true; `hold_for` watches that something stays
true for a while (bake). With `alarms=True` each poll also reads the watched CloudWatch
alarms (one DescribeAlarms for all of them) and an alarm in ALARM fails the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abfsm.actions import alarms as alarm_gate
from abfsm.actions.base import Run
from abfsm.errors import StateFailed, WaitTimeout
from abfsm.log import not_ready_text


@dataclass(frozen=True)
class Progress:
    ready: int
    total: int
    done: bool
    summary: str  # e.g. "3/4 InService in qa-public"
    not_ready: list[dict[str, Any]] = field(default_factory=list)  # {id, state, [lb], [reason]}
    what: str = "ready"
    ids: list[str] = field(default_factory=list)  # the ready instance ids


def wait_until(run: Run, check: Callable[[], Progress], *, alarms: bool = False,
               timeout: float | None = None) -> Progress:
    """Poll `check` (first poll immediately) until it is done or the state's timeout passes.

    A 600 s timeout at a 30 s interval polls at 0, 30, ..., 600 s: 21 polls, then fails with a
    message naming the state, what it waited for and what it saw last.
    """
    limit = run.timeout() if timeout is None else timeout

    def settle(progress: Progress, elapsed: float, remaining: float) -> bool:
        if progress.done:
            return True
        if remaining <= 0:
            raise WaitTimeout(f"{run.state}: {progress.summary} after {limit:g} s"
                              + _not_ready_tail(progress.not_ready))
        return False

    return _poll(run, check, limit, alarms, settle)


def hold_for(run: Run, seconds: float, check: Callable[[], Progress], *,
             alarms: bool = True) -> Progress:
    """Poll `check` at once and every --update-timeout for `seconds`; it must stay done.

    The first poll whose progress is not done fails the state, naming what dropped out and
    when. 300 s at a 30 s interval polls at 0, 30, ..., 300 s: 11 polls.
    """
    def settle(progress: Progress, elapsed: float, remaining: float) -> bool:
        if not progress.done:
            raise StateFailed(f"{run.state}: {progress.summary} after {elapsed:.0f} s of "
                              f"{seconds:g} s" + _not_ready_tail(progress.not_ready))
        return remaining <= 0

    return _poll(run, check, seconds, alarms, settle)


def _poll(run: Run, check: Callable[[], Progress], limit: float, alarms: bool,
          settle: Callable[[Progress, float, float], bool]) -> Progress:
    """The loop both share: alarms first (one DescribeAlarms per watched set), then `check`,
    one `wait.progress` event, then `settle` ends the wait (True), fails it (raises) or
    lets it sleep until the next poll (False), with a heartbeat after each sleep."""
    interval = run.settings.update_timeout
    watch = alarm_gate.watch_for(run) if alarms else alarm_gate.AlarmSet()
    start = run.clock.monotonic()
    poll = 0
    while True:
        if watch:
            alarm_gate.check_during_wait(run, watch)
        progress = check()
        poll += 1
        elapsed = run.clock.monotonic() - start
        remaining = max(0.0, limit - elapsed)
        run.log.info("wait.progress", state=run.state, poll=poll, ready=progress.ready,
                     total=progress.total, what=progress.what, not_ready=progress.not_ready,
                     elapsed_s=round(elapsed, 3), remaining_s=round(remaining, 3))
        if settle(progress, elapsed, remaining):
            return progress
        run.clock.sleep(min(interval, remaining))
        run.heartbeat()


def _not_ready_tail(not_ready: list[dict[str, Any]], limit: int = 8) -> str:
    """`; qa-public: 4 OutOfService (Instance: i-1, i-2, i-3, i-4)`: grouped, not one per id."""
    return "; " + not_ready_text(not_ready, limit) if not_ready else ""
