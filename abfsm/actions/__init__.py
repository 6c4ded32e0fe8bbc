"""One module per state action; ACTIONS maps the names states.yaml uses to them.

`action`, `Param`, `AwsCall` and `Run` are the public API for writing an action (built-in
or in another package). A spec names a third-party action as `package.module:attribute`
(importable from sys.path) or by the name of an `abfsm.actions` entry point; ACTIONS loads
it on first use and refuses anything that is not an Action.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from abfsm.actions.acquire_lock import acquire_lock
from abfsm.actions.approval import approval
from abfsm.actions.bake import bake
from abfsm.actions.base import Action, AwsCall, Param, Run, action
from abfsm.actions.drain import drain
from abfsm.actions.empty_target import empty_target
from abfsm.actions.hook import hook
from abfsm.actions.http_check import http_check
from abfsm.actions.inspect import inspect
from abfsm.actions.rollback import rollback
from abfsm.actions.scale_step import scale_step
from abfsm.actions.wait_elb import wait_elb
from abfsm.actions.wait_instances import wait_instances
from abfsm.spec import ActionNotLoaded

ENTRY_POINT_GROUP = "abfsm.actions"

BUILTIN: dict[str, Action] = {
    a.name: a
    for a in (acquire_lock, inspect, empty_target, scale_step, wait_instances, wait_elb,
              bake, approval, hook, http_check, drain, rollback)
}


class Registry(Mapping[str, Action]):
    """The built-in actions (what iterating lists), plus third-party ones loaded by name."""

    def __init__(self, builtin: Mapping[str, Action]) -> None:
        self._builtin = dict(builtin)
        self._loaded: dict[str, Action] = {}

    def __getitem__(self, name: str) -> Action:
        if name in self._builtin:
            return self._builtin[name]
        if name not in self._loaded:
            self._loaded[name] = _load(name, self._builtin)
        return self._loaded[name]

    def __setitem__(self, name: str, act: Action) -> None:
        """Replace or add an action by name (tests wrap a built-in one this way)."""
        self._builtin[name] = act

    def __iter__(self) -> Iterator[str]:
        return iter(self._builtin)

    def __len__(self) -> int:
        return len(self._builtin)


def _load(name: str, builtin: Mapping[str, Action]) -> Action:
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr:
            raise ActionNotLoaded(f"action {name!r}: expected package.module:attribute")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 (any import failure is the spec's error)
            raise ActionNotLoaded(f"action {name!r}: cannot import {module_name!r} "
                                  f"({type(exc).__name__}: {exc})") from None
        try:
            found = getattr(module, attr)
        except AttributeError:
            raise ActionNotLoaded(f"action {name!r}: module {module_name!r} has no "
                                  f"attribute {attr!r}") from None
    else:
        found = _entry_point(name, builtin)
    if not isinstance(found, Action):
        raise ActionNotLoaded(f"action {name!r} is a {type(found).__name__}, not an abfsm "
                              "action (declare it with the abfsm.actions.action decorator)")
    return found


def _entry_point(name: str, builtin: Mapping[str, Action]) -> object:
    from importlib.metadata import entry_points

    points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in points:
        known = sorted(builtin) + sorted(points)
        raise ActionNotLoaded(f"unknown action {name!r} (known: {', '.join(known)}; or "
                              "package.module:attribute)")
    try:
        return points[name].load()
    except Exception as exc:  # noqa: BLE001
        raise ActionNotLoaded(f"action {name!r}: its entry point {points[name].value!r} "
                              f"does not load ({type(exc).__name__}: {exc})") from None


ACTIONS = Registry(BUILTIN)

__all__ = ["ACTIONS", "Action", "AwsCall", "Param", "Registry", "Run", "action"]
