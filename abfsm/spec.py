"""Load and validate states.yaml in full, before any AWS call.

The spec is plain data: states (each naming its action, or final with an exit code) and
transitions (each an outcome of its source state's action). `machine_config()` turns a
validated spec into the dict handed to `transitions.Machine`, which is the one table of
moves; abfsm's own keys (action, params, timeout, exit, keeps_lock, result, resumable,
description) stay out of it.

Everything the runner does with a state comes from here: a working state's action, its
`params:` (checked against the action's declared parameters) and its `timeout:` (seconds,
or the name of a setting); a final state's exit code, whether it keeps the lock, whether
it counts as a success or a failure (`result:`), whether `abfsm resume` may carry it on
(`resumable:`) and the words the console uses for it (`description:`).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
import hashlib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from abfsm.context import Settings
from abfsm.errors import SpecError

SUPPORTED_VERSIONS = (1,)
# Triggers the runner fires itself when an action raises (never returned by an action).
RUNNER_TRIGGERS = frozenset({"fail", "refuse", "rollback"})
# What a final state means for the run (`result:`): success or failure of the deployment,
# or a checkpoint (paused) that is neither.
RESULTS = ("success", "failure", "paused")
# Settings that are not timeouts although they are numbers of seconds (the poll interval).
_NOT_TIMEOUTS = frozenset({"update_timeout"})

_STATE_KEYS = {"action", "params", "timeout", "final", "exit", "keeps_lock", "result",
               "resumable", "description"}
_TRANSITION_KEYS = {"trigger", "source", "dest"}
_TOP_KEYS = {"version", "initial", "states", "transitions"}


def timeout_settings() -> frozenset[str]:
    """Settings a state may name as its timeout: the numeric ones, bar the poll interval."""
    return frozenset(f.name for f in fields(Settings)
                     if str(f.type) in ("float", "int") and f.name not in _NOT_TIMEOUTS
                     and not f.name.startswith("instance_count"))


class ParamInfo(Protocol):
    """What the spec needs to know of a declared parameter."""

    @property
    def type(self) -> str: ...
    @property
    def default(self) -> Any: ...
    @property
    def required(self) -> bool: ...


class ActionInfo(Protocol):
    """What the spec needs to know of an action: its outcomes and its parameters."""

    @property
    def outcomes(self) -> frozenset[str]: ...
    @property
    def params(self) -> Mapping[str, ParamInfo]: ...


class ActionNotLoaded(KeyError):
    """An action name the registry cannot resolve; `problem` says why (for the SpecError)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class StateSpec:
    name: str
    action: str | None = None
    timeout: str | float | None = None  # seconds, or the name of a Settings field
    params: Mapping[str, Any] = field(default_factory=dict)  # validated, defaults filled in
    final: bool = False
    exit: int = 0
    keeps_lock: bool = False
    result: str = ""  # final states: success, failure or paused
    resumable: bool = False  # final states: `abfsm resume` carries the run on from here
    description: str = ""

    @property
    def failed(self) -> bool:
        return self.result == "failure"


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
    sha256: str = ""  # of the file's bytes: resume refuses a spec that changed

    def is_final(self, state: str) -> bool:
        return self.states[state].final

    def declares(self, trigger: str) -> bool:
        """Whether any transition fires `trigger` (e.g. `rollback` for --rollback-on-failure)."""
        return any(t.trigger == trigger for t in self.transitions)

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
    spec = validate(data, actions, shown)
    return _with_hash(spec, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _with_hash(spec: Spec, sha256: str) -> Spec:
    return Spec(spec.path, spec.version, spec.initial, spec.states, spec.transitions, sha256)


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
        fail_dest = states[moves[(name, "fail")]]
        if not fail_dest.final or not fail_dest.failed:
            raise bad(f"states.{name}", f"'fail' from {name!r} leads to {fail_dest.name!r}, "
                                        "which is not a final state with result: failure")
    return Spec(path, version, initial, states, tuple(transitions))


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
            out[name] = _final_state(name, body, code, key, bad)
            continue
        for only_final in ("exit", "keeps_lock", "result", "resumable"):
            if only_final in body:
                raise bad(f"{key}.{only_final}", "only final states take this key")
        if action is None:
            raise bad(key, "a working state needs an action (or final: true)")
        if not isinstance(action, str):
            raise bad(f"{key}.action", f"must be an action name, not {_kind(action)}")
        try:
            info = actions[action]
        except ActionNotLoaded as exc:
            raise bad(f"{key}.action", exc.problem) from None
        except KeyError:
            raise bad(f"{key}.action", f"unknown action {action!r} "
                                       f"(known: {', '.join(sorted(actions))})") from None
        timeout = _timeout(body.get("timeout"), f"{key}.timeout", bad)
        params = _params(body.get("params"), info, action, f"{key}.params", bad)
        description = body.get("description", "")
        if not isinstance(description, str):
            raise bad(f"{key}.description", f"must be text, not {_kind(description)}")
        out[name] = StateSpec(name, action=action, timeout=timeout, params=params,
                              description=description)
    return out


def _final_state(name: str, body: dict[str, Any], code: int, key: str, bad: Any) -> StateSpec:
    flags = {}
    for flag in ("keeps_lock", "resumable"):
        value = body.get(flag, False)
        if not isinstance(value, bool):
            raise bad(f"{key}.{flag}", f"must be true or false, not {_kind(value)}")
        flags[flag] = value
    result = body.get("result", "success" if code == 0 else "failure")
    if result not in RESULTS:
        raise bad(f"{key}.result", f"must be one of {', '.join(RESULTS)}, not {result!r}")
    if flags["resumable"] and not flags["keeps_lock"]:
        raise bad(f"{key}.resumable", "a resumable final state must keep the lock "
                                      "(keeps_lock: true): resume continues under it")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise bad(f"{key}.description", f"must be text, not {_kind(description)}")
    return StateSpec(name, final=True, exit=code, keeps_lock=flags["keeps_lock"],
                     result=result, resumable=flags["resumable"], description=description)


def _timeout(value: Any, key: str, bad: Any) -> str | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad(key, f"must be a number of seconds or a setting's name, not {_kind(value)}")
    if isinstance(value, str):
        known = timeout_settings()
        if value not in known:
            raise bad(key, f"unknown timeout setting {value!r} (known: {', '.join(sorted(known))})")
        return value
    if not 0 < value < float("inf"):
        raise bad(key, f"must be more than 0 seconds, not {value!r}")
    return float(value)


def _params(raw: Any, info: ActionInfo, action: str, key: str, bad: Any) -> dict[str, Any]:
    """A state's `params:` checked against the action's declaration, defaults filled in."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad(key, f"must be a mapping of parameter names, not {_kind(raw)}")
    declared = info.params
    for name in raw:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise bad(f"{key}.{name}", f"unknown parameter of action {action!r} (it takes: {known})")
    out: dict[str, Any] = {}
    for name, param in declared.items():
        if name not in raw:
            if param.required:
                raise bad(f"{key}.{name}", f"missing: action {action!r} requires it "
                                           f"({param.type})")
            out[name] = copy.deepcopy(param.default)
            continue
        value = raw[name]
        if not _is_type(value, param.type):
            raise bad(f"{key}.{name}", f"must be {param.type}, not {_kind(value)} ({value!r})")
        out[name] = float(value) if param.type == "number" else value
    return out


def _is_type(value: Any, kind: str) -> bool:
    """Whether a YAML value is of a declared parameter type (number, int, str, bool, object,
    list[T], map[str,T])."""
    kind = kind.replace(" ", "")
    if kind.startswith("list[") and kind.endswith("]"):
        return isinstance(value, list) and all(_is_type(v, kind[5:-1]) for v in value)
    if kind.startswith("map[str,") and kind.endswith("]"):
        return isinstance(value, dict) and all(
            isinstance(k, str) and _is_type(v, kind[8:-1]) for k, v in value.items())
    if kind in ("number", "int"):
        ok = (int, float) if kind == "number" else (int,)
        return isinstance(value, ok) and not isinstance(value, bool)
    simple: dict[str, Any] = {"str": str, "bool": bool, "object": dict, "any": object}
    if kind not in simple:
        raise ValueError(f"unknown parameter type {kind!r}")
    return isinstance(value, simple[kind])


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
