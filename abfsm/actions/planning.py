"""The dry-run plan: walk the spec from inspect's decision, as a real run would go.

A transitions Machine built from the spec (the same table of moves the runner uses) is
moved by the outcome each state's action would return; each action's `planner` says that
outcome and the mutating calls it would make, from the plan alone (no AWS). An action
without a planner contributes its declared mutating calls and follows its only outcome, or
the first one (in name order) that does not lead to a failure. Loops (scale and
wait-instances once per step) end because the planners advance the plan's step.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from abfsm.actions.base import Action, Run
from abfsm.spec import Spec, machine_config

_MAX_STATES = 1000  # a spec that loops without end (planner-less states) stops here


@dataclass(frozen=True)
class Walk:
    path: list[str]  # the working states a real run would pass through after inspect
    steps: list[tuple[str, str]]  # (state, mutating call as a plan line), in order
    final: str  # the final state it would end in

    @property
    def calls(self) -> list[str]:
        return [line for _, line in self.steps]


def walk(run: Run, trigger: str) -> Walk:
    """From run.state (inspect), fire `trigger` and follow the planners to a final state."""
    from transitions import Machine

    spec = run.spec
    machine = Machine(**machine_config(spec, run.state))
    sim = dataclasses.replace(run, plan=copy.deepcopy(run.plan))
    machine.trigger(trigger)
    path: list[str] = []
    steps: list[tuple[str, str]] = []
    while not spec.is_final(machine.state) and len(path) < _MAX_STATES:
        state = machine.state
        path.append(state)
        sim.state = state
        outcome, lines = _plan_state(sim, machine, declared_action(run, state))
        steps += [(state, line) for line in lines]
        machine.trigger(outcome)
    return Walk(path, steps, machine.state)


def declared_action(run: Run, state: str) -> Action:
    """The Action a state runs, with its declaration (a stand-in such as a test's plain
    function is planned with the registered action of that name)."""
    name = run.spec.states[state].action or ""
    act = run.actions.get(name)
    if isinstance(act, Action):
        return act
    from abfsm.actions import ACTIONS  # a stand-in (test fake): plan with the real declaration

    return ACTIONS[name]


def _plan_state(sim: Run, machine: Any, act: Action) -> tuple[str, list[str]]:
    if act.planner is not None:
        return act.planner(sim)
    lines = [f"{c.service} {c.api} ({c.resource}, state {sim.state})"
             for c in act.aws_calls(sim.settings, sim.params) if c.mutating]
    return _likely_outcome(sim.spec, machine, sim.state, act), lines


def _likely_outcome(spec: Spec, machine: Any, state: str, act: Action) -> str:
    outcomes = sorted(act.outcomes)
    for outcome in outcomes:
        dests = [t.dest for t in machine.get_transitions(outcome, source=state)]
        if dests and not any(spec.states[d].final and spec.states[d].failed for d in dests):
            return outcome
    return outcomes[0]
