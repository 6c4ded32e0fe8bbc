"""Load and validate states.yaml in full, before any AWS call.

The spec is plain data: states (each naming its action, or final with an exit code) and
transitions (each an outcome of its source state's action). `machine_config()` turns a
validated spec into the dict handed to `transitions.Machine`; abfsm's own keys (action,
timeout, exit, keeps_lock) stay out of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from abfsm.errors import SpecError

SUPPORTED_VERSIONS = (1,)
# Triggers the runner fires itself when an action raises (never returned by an action).
RUNNER_TRIGGERS = frozenset({"fail", "refuse", "rollback"})
# Settings a state may name as its timeout.
TIMEOUT_SETTINGS = frozenset({"health_check_timeout"})

_STATE_KEYS = {"action", "timeout", "final", "exit", "keeps_lock", "description"}
_TRANSITION_KEYS = {"trigger", "source", "dest"}
_TOP_KEYS = {"version", "initial", "states", "transitions"}


class ActionInfo(Protocol):
    """What the spec needs to know of an action: the triggers it may return."""

    @property
    def outcomes(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class StateSpec:
    name: str
    action: str | None = None
    timeout: str | None = None
    final: bool = False
    exit: int = 0
    keeps_lock: bool = False
    description: str = ""


@dataclass(frozen=True)
class Transition:
    trigger: str
    source: str
    dest: str


@dataclass(frozen=True)
class Spec:
    path: str
    version: int
    initial: str
    states: Mapping[str, StateSpec]
    transitions: tuple[Transition, ...]
    _moves: Mapping[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def is_final(self, state: str) -> bool:
        return self.states[state].final

    def dest(self, source: str, trigger: str) -> str | None:
        """Where `trigger` leads from `source`, or None if it is not declared there."""
        return self._moves.get((source, trigger))

    @property
    def working_states(self) -> list[str]:
        return [name for name, st in self.states.items() if not st.final]


def packaged_spec_path() -> Path:
    return Path(str(resources.files("abfsm").joinpath("states.yaml")))


def load_spec(path: str | Path | None, actions: Mapping[str, ActionInfo]) -> Spec:
    """Read and validate a spec file; raise SpecError naming the file, the key and the problem."""
    spec_path = Path(path) if path else packaged_spec_path()
    shown = str(path) if path else "states.yaml (packaged)"
    try:
        text = spec_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(shown, "-", f"cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise SpecError(shown, f"line {line}", f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
                        "is it a YAML file?") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(shown, where, f"not valid YAML: {problem}") from None
    return validate(data, actions, shown)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a repeated mapping key (YAML forbids it; PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def validate(data: Any, actions: Mapping[str, ActionInfo], path: str = "<spec>") -> Spec:
    """Validate loaded YAML data in full and build a Spec."""

    def bad(key: str, problem: str) -> SpecError:
        return SpecError(path, key, problem)

    if not isinstance(data, dict):
        raise bad("-", f"the top level must be a mapping, not {_kind(data)}")
    _no_unknown_keys(data, _TOP_KEYS, "", bad)
    for key in ("version", "initial", "states", "transitions"):
        if key not in data:
            raise bad(key, "missing")
    version = data["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("version", f"must be an integer, not {_kind(version)}")
    if version not in SUPPORTED_VERSIONS:
        raise bad("version", f"unsupported version {version} (this abfsm reads {SUPPORTED_VERSIONS})")

    states = _states(data["states"], actions, bad)
    initial = data["initial"]
    if not isinstance(initial, str):
        raise bad("initial", f"must be a state name, not {_kind(initial)}")
    if initial not in states:
        raise bad("initial", f"unknown state {initial!r}")
    if states[initial].final:
        raise bad("initial", f"{initial!r} is a final state")

    transitions = _transitions(data["transitions"], states, bad)
    moves = {(tr.source, tr.trigger): tr.dest for tr in transitions}  # unique: see _transitions
    _check_graph(initial, states, moves, bad)

    for name, st in states.items():
        if st.final:
            continue
        declared = {t for (s, t) in moves if s == name}
        outcomes = actions[st.action].outcomes  # type: ignore[index]
        missing = sorted(outcomes - declared)
        if missing:
            raise bad(
                f"states.{name}",
                f"action {st.action!r} can return {', '.join(map(repr, missing))} "
                f"but no transition from {name!r} declares it",
            )
        extra = sorted(declared - outcomes - RUNNER_TRIGGERS)
        if extra:
            raise bad(
                f"states.{name}",
                f"trigger {extra[0]!r} from {name!r} is not an outcome of action {st.action!r} "
                f"(it returns {', '.join(sorted(outcomes))})",
            )
        if "fail" not in declared:
            raise bad(f"states.{name}", f"no 'fail' transition from working state {name!r}")
    return Spec(path, version, initial, states, tuple(transitions), moves)


def machine_config(spec: Spec, initial: str | None = None) -> dict[str, Any]:
    """The plain dict for `transitions.Machine(**config)`: every move declared, none implied."""
    return {
        "states": list(spec.states),
        "transitions": [
            {"trigger": t.trigger, "source": t.source, "dest": t.dest} for t in spec.transitions
        ],
        "initial": initial or spec.initial,
        "auto_transitions": False,
        "ignore_invalid_triggers": False,
        "send_event": True,
    }


def _states(raw: Any, actions: Mapping[str, ActionInfo], bad: Any) -> dict[str, StateSpec]:
    if not isinstance(raw, dict) or not raw:
        raise bad("states", f"must be a non-empty mapping of state names, not {_kind(raw)}")
    out: dict[str, StateSpec] = {}
    for name, body in raw.items():
        key = f"states.{name}"
        if not isinstance(name, str) or not name:
            raise bad("states", f"state names must be strings, not {_kind(name)}")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise bad(key, f"must be a mapping, not {_kind(body)}")
        _no_unknown_keys(body, _STATE_KEYS, key + ".", bad)
        final = body.get("final", False)
        if not isinstance(final, bool):
            raise bad(f"{key}.final", f"must be true or false, not {_kind(final)}")
        action = body.get("action")
        if final:
            if action is not None:
                raise bad(f"{key}.action", "a final state runs no action")
            code = body.get("exit")
            if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
                raise bad(f"{key}.exit", f"a final state needs an exit code 0-255, not {code!r}")
            keeps = body.get("keeps_lock", False)
            if not isinstance(keeps, bool):
                raise bad(f"{key}.keeps_lock", f"must be true or false, not {_kind(keeps)}")
            out[name] = StateSpec(name, final=True, exit=code, keeps_lock=keeps,
                                  description=str(body.get("description", "")))
            continue
        for only_final in ("exit", "keeps_lock"):
            if only_final in body:
                raise bad(f"{key}.{only_final}", "only final states take this key")
        if action is None:
            raise bad(key, "a working state needs an action (or final: true)")
        if not isinstance(action, str):
            raise bad(f"{key}.action", f"must be an action name, not {_kind(action)}")
        if action not in actions:
            raise bad(f"{key}.action", f"unknown action {action!r} (known: {', '.join(sorted(actions))})")
        timeout = body.get("timeout")
        if timeout is not None and timeout not in TIMEOUT_SETTINGS:
            known = ", ".join(sorted(TIMEOUT_SETTINGS))
            raise bad(f"{key}.timeout", f"unknown timeout setting {timeout!r} (known: {known})")
        out[name] = StateSpec(name, action=action, timeout=timeout,
                              description=str(body.get("description", "")))
    return out


def _transitions(raw: Any, states: Mapping[str, StateSpec], bad: Any) -> list[Transition]:
    if not isinstance(raw, list) or not raw:
        raise bad("transitions", f"must be a non-empty list, not {_kind(raw)}")
    working = [n for n, s in states.items() if not s.final]
    out: list[Transition] = []
    first: dict[tuple[str, str], int] = {}  # (source, trigger) -> index of its declaration
    for i, item in enumerate(raw):
        key = f"transitions[{i}]"
        if not isinstance(item, dict):
            raise bad(key, f"must be a mapping with trigger, source, dest, not {_kind(item)}")
        _no_unknown_keys(item, _TRANSITION_KEYS, key + ".", bad)
        for part in ("trigger", "source", "dest"):
            if part not in item:
                raise bad(f"{key}.{part}", "missing")
        trigger, source, dest = item["trigger"], item["source"], item["dest"]
        if not isinstance(trigger, str) or not trigger.isidentifier():
            raise bad(f"{key}.trigger", f"must be an identifier, not {trigger!r}")
        if not isinstance(dest, str):
            raise bad(f"{key}.dest", f"must be a state name, not {_kind(dest)}")
        if dest not in states:
            raise bad(f"{key}.dest", f"unknown state {dest!r}")
        if source == "*":
            sources = working
        elif isinstance(source, str):
            sources = [source]
        elif isinstance(source, list) and source and all(isinstance(s, str) for s in source):
            sources = source
        else:
            raise bad(f"{key}.source", f"must be a state name, a list of them or '*', not {source!r}")
        for src in sources:
            if src not in states:
                raise bad(f"{key}.source", f"unknown state {src!r}")
            if states[src].final:
                raise bad(f"{key}.source", f"{src!r} is a final state; nothing leaves it")
            if (src, trigger) in first:
                raise bad(key, f"duplicate trigger {trigger!r} from state {src!r} "
                               f"(already in transitions[{first[(src, trigger)]}])")
            first[(src, trigger)] = i
            out.append(Transition(trigger, src, dest))
    return out


def _check_graph(initial: str, states: Mapping[str, StateSpec],
                 moves: Mapping[tuple[str, str], str], bad: Any) -> None:
    edges: dict[str, set[str]] = {name: set() for name in states}
    for (src, _), dst in moves.items():
        edges[src].add(dst)
    seen = {initial}
    queue = deque([initial])
    while queue:
        for nxt in edges[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    for name in states:
        if name not in seen:
            raise bad(f"states.{name}", f"unreachable from the initial state {initial!r}")
    finals = {n for n, s in states.items() if s.final}
    reaches_final = set(finals)
    changed = True
    while changed:
        changed = False
        for src, dsts in edges.items():
            if src not in reaches_final and dsts & reaches_final:
                reaches_final.add(src)
                changed = True
    for name in states:
        if name not in reaches_final:
            raise bad(f"states.{name}", "no path from this working state to a final state")


def _no_unknown_keys(body: dict[Any, Any], allowed: set[str], prefix: str, bad: Any) -> None:
    for key in body:
        if key not in allowed:
            raise bad(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
