"""locked: take the environment lock atomically (dry-run: only check that it is free)."""

from __future__ import annotations

from abfsm.actions.base import Run, action


@action({"acquired"}, before_plan=True,
        doc="take the environment lock atomically (a dry run only checks that it is free)")
def acquire_lock(run: Run) -> str:
    if run.lock.held:  # resumed: this run already holds it
        return "acquired"
    run.lock.acquire(run.record)  # raises LockHeld (exit 3) when anything else holds it
    if run.lock.read_only:
        run.log.info("lock.free", lock=run.lock.where)  # dry run: checked, not taken
    else:
        run.log.info("lock.acquired", lock=run.lock.where)
    return "acquired"
