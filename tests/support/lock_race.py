"""Racing acquirers for both lock stores: threads released together by a barrier."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from abfsm.errors import LockHeld


def race_once(new_lock: Callable[[], Any], make_record: Callable[[str], Any], racers: int,
              label: str) -> str:
    """`racers` threads call `new_lock().acquire(...)` at the same moment; asserts exactly one
    won and returns the winner's run_id (`{label}-{i}`)."""
    barrier = threading.Barrier(racers)

    def attempt(i: int) -> str:
        lock = new_lock()
        barrier.wait(timeout=30)
        try:
            lock.acquire(make_record(f"{label}-{i}"))
        except LockHeld:
            return "held"
        return f"{label}-{i}"

    with ThreadPoolExecutor(max_workers=racers) as pool:
        outcomes = list(pool.map(attempt, range(racers)))
    winners = [o for o in outcomes if o != "held"]
    assert len(winners) == 1, (label, outcomes)
    return winners[0]
