"""Instance lifecycle states as a deployment sees them: lifecycle hooks and warm pools.

What AWS reports in an instance's LifecycleState (Auto Scaling user guide, "Amazon EC2 Auto
Scaling instance lifecycle"):
- `Pending` -> (launch hook) `Pending:Wait` -> `Pending:Proceed` -> `InService`. An instance
  held by a hook is neither ready nor failed: it waits for CompleteLifecycleAction or the
  hook's heartbeat timeout. A timeout with DefaultResult ABANDON terminates it and the group
  launches a replacement (a new instance id).
- `Terminating` -> (termination hook) `Terminating:Wait` -> `Terminating:Proceed` ->
  `Terminated`: still in the group, so a drain that waits waits for it.
- `Warmed:Pending[:Wait|:Proceed]`, `Warmed:Stopped|Running|Hibernated`, `Warmed:Terminating*`:
  a warm pool's instances. They are not part of the group's capacity; one leaving the pool
  goes through `Pending` to `InService` under the same id, and only then counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from abfsm.aws.autoscaling import Instance

_HINTS = {
    "Pending:Wait": "held by a launch lifecycle hook until CompleteLifecycleAction or its "
                    "heartbeat timeout",
    "Pending:Proceed": "launch lifecycle hook completed, finishing the launch",
    "Terminating:Wait": "held by a termination lifecycle hook",
    "Terminating:Proceed": "termination lifecycle hook completed",
}


def warmed(instance: Instance) -> bool:
    return instance.lifecycle.startswith("Warmed:")


def leaving(instance: Instance) -> bool:
    """On its way out of the group (it will not become ready)."""
    return instance.lifecycle.startswith(("Terminating", "Terminated", "Detaching", "Detached"))


def launching(instance: Instance) -> bool:
    """Counts toward the group's capacity: launched, not in the warm pool, not leaving."""
    return not warmed(instance) and not leaving(instance)


def hint(lifecycle: str) -> str | None:
    if lifecycle.startswith("Warmed:"):
        return "in the warm pool: counts once InService and Healthy"
    return _HINTS.get(lifecycle)


def row(instance: Instance) -> dict[str, Any]:
    """A not-ready entry for progress lines and timeout messages."""
    out: dict[str, Any] = {"id": instance.id, "state": instance.status}
    reason = hint(instance.lifecycle)
    if reason:
        out["reason"] = reason
    return out


class Launches:
    """Instances seen during one wait: which of them left the group before being ready
    (a launch hook that ABANDONed them, a failed health check) and need a replacement."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}  # id -> last status while launching
        self.lost: dict[str, str] = {}  # id -> what became of it

    def observe(self, instances: Iterable[Instance]) -> list[tuple[str, str, str]]:
        """Record this poll; return the newly lost ones as (id, last status, now)."""
        now = {i.id: i for i in instances}
        new: list[tuple[str, str, str]] = []
        for iid, before in self._last.items():
            current = now.get(iid)
            if iid not in self.lost and (current is None or leaving(current)):
                after = current.lifecycle if current else "gone"
                self.lost[iid] = f"{before}, then {after}"
                new.append((iid, before, after))
        for iid, inst in now.items():
            if launching(inst) and not inst.ready:
                self._last[iid] = inst.status
            else:
                self._last.pop(iid, None)
        return new

    def rows(self) -> list[dict[str, Any]]:
        return [{"id": iid, "state": "replaced",
                 "reason": f"{what} before it was ready; waiting for its replacement"}
                for iid, what in self.lost.items()]
