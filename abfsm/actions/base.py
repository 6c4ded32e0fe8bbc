"""What every action receives (Run) and how an action is declared (Action, `action()`).

The declaration is the public interface of an action, built-in or third-party: the outcomes
it may return, the `params:` a state may give it (`Param`), the AWS calls it can make
(`AwsCall`, reads included) and a one-line `doc`. The spec validator, the dry-run plan, the
README's action table and the IAM policy all read the same declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from abfsm.aws import Services
from abfsm.clock import Clock
from abfsm.context import Plan, Settings
from abfsm.lock import Lock
from abfsm.record import RunRecord
from abfsm.spec import Spec


def _logger(name: str) -> Any:
    import structlog  # lazily: `abfsm graph` reads the actions registry and logs nothing

    return structlog.get_logger(name)


@dataclass(frozen=True)
class Param:
    """One parameter a state's `params:` may give an action."""

    type: str  # "number" | "int" | "str" | "bool" | "list[str]" | "map[str,str]" | "list[object]"
    default: Any = None
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call an action can make (what the dry-run plan and the IAM policy list)."""

    service: str  # boto3 service name: autoscaling, elb, elbv2, s3, cloudwatch, ec2, ...
    api: str  # e.g. "UpdateAutoScalingGroup"
    mutating: bool = False
    # symbolic: "asg:target", "asg:active", "asg:pair", "elb", "target-group", "alarm", "*"
    resource: str = "*"

    def __str__(self) -> str:
        return f"{self.service} {self.api}"


def describe_asg(resource: str) -> AwsCall:
    return AwsCall("autoscaling", "DescribeAutoScalingGroups", resource=resource)


def update_asg(resource: str) -> AwsCall:
    return AwsCall("autoscaling", "UpdateAutoScalingGroup", mutating=True, resource=resource)


CallsDecl = Union[Sequence[AwsCall], Callable[[Settings, Mapping[str, Any]], Sequence[AwsCall]]]


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
    actions: Mapping[str, Any] = field(default_factory=dict)  # the spec's action names -> Action

    @property
    def params(self) -> Mapping[str, Any]:
        """The current state's validated `params:` (defaults filled in)."""
        return self.spec.states[self.state].params

    def timeout(self) -> float:
        """The current state's `timeout:`: seconds, or the Settings field it names.

        A state without one waits up to --health-check-timeout.
        """
        value = self.spec.states[self.state].timeout
        if value is None:
            value = "health_check_timeout"
        if isinstance(value, str):
            return float(getattr(self.settings, value))
        return float(value)

    def heartbeat(self) -> None:
        """Refresh the run record (and its heartbeat) during a wait."""
        self.record.context = self.plan.to_dict()
        self.lock.save(self.record)

    def said_no(self, why: str) -> None:
        """A gate returning its `failed` / `rejected` outcome says why: if the run then ends
        in a failure state, the summary and the record name this state and reason."""
        self.record.last_error, self.record.failed_state = why, self.state


@dataclass(frozen=True)
class Action:
    """A state's behaviour: a function of the Run returning one of its declared outcomes."""

    name: str
    fn: Callable[[Run], str]
    outcomes: frozenset[str]
    params: Mapping[str, Param] = field(default_factory=dict)
    calls: CallsDecl = ()
    doc: str = ""
    requires: tuple[str, ...] = ()  # Plan fields that must be decided to (re-)enter the state
    before_plan: bool = False  # only runs before inspect decided: never re-entered after
    # Dry run: (the outcome the action would return, the mutating calls it would make, as
    # plan lines), from the Run alone and without AWS; it may advance run.plan (steps).
    planner: Callable[[Run], tuple[str, list[str]]] | None = None

    def __call__(self, run: Run) -> str:
        trigger = self.fn(run)
        if trigger not in self.outcomes:
            raise AssertionError(f"action {self.name} returned undeclared outcome {trigger!r}")
        return trigger

    def aws_calls(self, settings: Settings, params: Mapping[str, Any] | None = None) -> tuple[AwsCall, ...]:
        """The AWS calls this action can make under `settings` and a state's `params`."""
        calls = self.calls(settings, params or {}) if callable(self.calls) else self.calls
        return tuple(calls)

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


def action(outcomes: set[str] | frozenset[str] | Sequence[str], *,
           params: Mapping[str, Param] | None = None, requires: Sequence[str] = (),
           before_plan: bool = False, calls: CallsDecl = (), doc: str = "",
           planner: Callable[[Run], tuple[str, list[str]]] | None = None,
           ) -> Callable[[Callable[[Run], str]], Action]:
    """Declare a function of the Run as an action (the public API for third-party actions).

    `outcomes`: the triggers it may return (the spec must route each one). `params`: what a
    state's `params:` may give it (`run.params`). `calls`: every AWS call it can make, or a
    function of (settings, params) returning them. `doc`: one line for the README.
    `planner`: how the dry-run plan walks through it (default: its declared mutating calls,
    and its one outcome or the first that does not end in a failure).
    """
    def wrap(fn: Callable[[Run], str]) -> Action:
        text = doc or (fn.__doc__ or "").strip().split("\n", 1)[0]
        return Action(fn.__name__, fn, frozenset(outcomes), dict(params or {}), calls, text,
                      tuple(requires), before_plan, planner)
    return wrap
