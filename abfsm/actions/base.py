"""What every action receives (Run) and how an action is declared (Action)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abfsm.aws import Services
from abfsm.clock import Clock
from abfsm.context import Plan, Settings
from abfsm.lock import Lock
from abfsm.record import RunRecord
from abfsm.spec import Spec


def _logger(name: str) -> Any:
    import structlog  # lazily: `abfsm graph` reads the actions registry and logs nothing

    return structlog.get_logger(name)


@dataclass
class Run:
    """One run's world, built once by the runner and passed to every action."""

    settings: Settings
    plan: Plan
    aws: Services
    clock: Clock
    lock: Lock
    record: RunRecord
    spec: Spec
    state: str = ""
    log: Any = field(default_factory=lambda: _logger("abfsm"))

    def timeout(self) -> float:
        """The current state's timeout, from the setting its spec entry names."""
        name = self.spec.states[self.state].timeout or "health_check_timeout"
        return float(getattr(self.settings, name))

    def heartbeat(self) -> None:
        """Refresh the run record (and its heartbeat) during a wait."""
        self.record.context = self.plan.to_dict()
        self.lock.save(self.record)


@dataclass(frozen=True)
class Action:
    """A state's behaviour: a function of the Run returning one of its declared outcomes."""

    name: str
    fn: Callable[[Run], str]
    outcomes: frozenset[str]
    requires: tuple[str, ...] = ()  # Plan fields that must be decided to (re-)enter the state
    before_plan: bool = False  # only runs before inspect decided: never re-entered after

    def __call__(self, run: Run) -> str:
        trigger = self.fn(run)
        if trigger not in self.outcomes:
            raise AssertionError(f"action {self.name} returned undeclared outcome {trigger!r}")
        return trigger

    def missing(self, plan: Plan) -> list[str]:
        return [key for key in self.requires if not getattr(plan, key)]

    def cannot_resume(self, plan: Plan) -> str | None:
        """Why a resumed run cannot re-enter this state with `plan`, or None if it can."""
        missing = self.missing(plan)
        if missing:
            return (f"it needs {', '.join(missing)} from inspect, which the run never decided")
        if self.before_plan and plan.mode:
            return ("inspect already decided this run's plan and the deployment went on; "
                    "re-deciding over a half-finished deployment is refused")
        return None


def action(outcomes: set[str], requires: tuple[str, ...] = (),
           before_plan: bool = False) -> Callable[[Callable[[Run], str]], Action]:
    def wrap(fn: Callable[[Run], str]) -> Action:
        return Action(fn.__name__, fn, frozenset(outcomes), requires, before_plan)
    return wrap
