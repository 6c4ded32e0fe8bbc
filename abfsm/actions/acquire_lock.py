"""locked: take the environment lock atomically (dry-run: only check that it is free)."""

from __future__ import annotations

from abfsm.actions.base import Run, action


@action({"acquired"})
def acquire_lock(run: Run) -> str:
    if run.lock.held:  # resumed: this run already holds it
        return "acquired"
    run.lock.acquire(run.record)  # raises LockHeld (exit 3) when anything else holds it
    run.log.info("lock.acquired", lock=run.lock.where, read_only=run.lock.read_only)
    return "acquired"
