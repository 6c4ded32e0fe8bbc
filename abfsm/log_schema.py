"""The documented schema of every JSON log event, as data, and a validator for it.

`--log-format json` writes one JSON object per line. Every line carries the COMMON keys;
each event name in EVENTS lists its level, its required keys and its optional keys, each
with a type name:

    str, int, number (int or float), bool, object (a JSON object), list,
    list[str], list[int], list[object]; a `|null` suffix also allows null.

`validate(event)` returns the problems of one parsed line (an empty list when it conforms):
an unknown event, a missing or mistyped key, an undocumented key, a wrong level. The README's
log table is generated from this module (`markdown_table()`), so the docs and the validator
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1

LEVELS = ("debug", "info", "warning", "error")

# On every line. `run_id` and `env` are bound when a run starts (see RUNLESS).
COMMON: dict[str, str] = {
    "ts": "str",  # ISO 8601 UTC, e.g. 2026-01-01T12:00:00.123456Z
    "level": "str",  # one of LEVELS
    "event": "str",  # one of EVENTS
    "run_id": "str",
    "env": "str",
}

# Events that may be logged before any run exists, without run_id / env: none. Every line
# names its run (the demo binds its run before setting up; unlock binds the run it removes).
RUNLESS: frozenset[str] = frozenset()

EVENTS: dict[str, dict[str, Any]] = {
    "run.started": {
        "level": "info",
        "doc": "a deploy or resume begins: version, spec, lock location, all effective settings",
        "required": {"command": "str", "version": "str", "spec": "str", "spec_version": "int",
                     "lock": "str", "settings": "object", "started_by": "object"},
        "optional": {"from_state": "str", "previous_status": "str"},  # resume only
    },
    "lock.acquired": {
        "level": "info",
        "doc": "the environment lock was taken",
        "required": {"lock": "str"},
    },
    "lock.free": {
        "level": "info",
        "doc": "dry run: the lock was checked and is free (not taken)",
        "required": {"lock": "str"},
    },
    "inspect.decided": {
        "level": "info",
        "doc": "what inspect decided: active and target ASG, counts, steps, load balancers",
        "required": {"trigger": "str", "mode": "str|null", "active": "str|null",
                     "target": "str|null", "active_count": "int", "target_count": "int",
                     "steps": "list[int]", "empty_first": "str|null",
                     "load_balancers": "list[str]", "target_groups": "list[str]",
                     "lb_source": "str", "serving": "object|null"},
    },
    "inspect.raise_max": {
        "level": "warning",
        "doc": "the count exceeds the target ASG's MaxSize, which the scale call raises",
        "required": {"asg": "str", "max_size": "int", "raise_to": "int"},
    },
    "inspect.min_size": {
        "level": "warning",
        "doc": "the target ASG had MinSize above 0 (it is emptied first): each scale step sets "
               "MinSize to min(MinSize, the step), restoring it to `restored_to`",
        "required": {"asg": "str", "min_size": "int", "first_step": "int", "restored_to": "int"},
    },
    "plan": {
        "level": "info",
        "doc": "dry run: the plan as text lines and the mutating calls a real run would make",
        "required": {"lines": "list[str]", "calls": "list[str]"},
    },
    "scale.step": {
        "level": "info",
        "doc": "the target ASG's desired capacity was set for one step",
        "required": {"asg": "str", "desired": "int", "step": "int", "steps": "int"},
    },
    "wait.progress": {
        "level": "info",
        "doc": "one poll of a wait: ready/total and the instances not ready yet",
        "required": {"state": "str", "poll": "int", "ready": "int", "total": "int",
                     "what": "str", "not_ready": "list[object]", "elapsed_s": "number",
                     "remaining_s": "number"},
    },
    "transition": {
        "level": "info",
        "doc": "one move of the machine (exactly one per state change)",
        "required": {"src": "str", "dst": "str", "trigger": "str", "elapsed_s": "number"},
    },
    "aws.call": {
        "level": "info",
        "doc": "a mutating AWS call, with its key parameters",
        "required": {"service": "str", "action": "str", "params": "object"},
    },
    "aws.read": {
        "level": "debug",
        "doc": "--verbose: a read-only AWS call (describe, get, list) and its parameters",
        "required": {"service": "str", "action": "str", "params": "object"},
    },
    "state.failed": {
        "level": "error",
        "doc": "a state's action failed or refused; `next` is the trigger fired; an "
               "unexpected exception carries its traceback (`exception`)",
        "required": {"state": "str", "error": "str", "exit_code": "int", "next": "str"},
        "optional": {"error_type": "str", "exception": "str", "exc_info": "bool|str"},
    },
    "run.crashed": {
        "level": "error",
        "doc": "an unexpected error in the engine itself, with its traceback; run.finished follows",
        "required": {"error": "str", "error_type": "str"},
        "optional": {"exception": "str", "exc_info": "bool|str"},
    },
    "drain.started": {
        "level": "info",
        "doc": "the old ASG was set to MinSize 0 / DesiredCapacity 0; its instances are "
               "draining (`wait`: --wait-for-scale-down)",
        "required": {"asg": "str", "status": "str", "instances": "int",
                     "instance_ids": "list[str]", "load_balancers": "list[str]",
                     "deregistration_delays": "object", "wait": "bool"},
    },
    "drain.finished": {
        "level": "info",
        "doc": "--wait-for-scale-down: the old ASG is empty and deregistered",
        "required": {"asg": "str", "instances": "int"},
    },
    "drain.nothing": {
        "level": "info",
        "doc": "there was no old ASG to drain",
        "required": {"reason": "str"},
    },
    "wait_elb.skipped": {
        "level": "info",
        "doc": "no load balancer to wait for (--no-elb-check or none attached)",
        "required": {"reason": "str"},
    },
    "asg.emptied": {
        "level": "info",
        "doc": "an ASG that had to be empty first (--clean-up, --single-asg) is empty",
        "required": {"asg": "str"},
    },
    "rollback.done": {
        "level": "info",
        "doc": "--rollback-on-failure: the new ASG is back to 0; `kept` is the old one",
        "required": {"asg": "str", "kept": "str|null"},
    },
    "version.decided": {
        "level": "info",
        "doc": "inspect: the launch template version the target will run (--launch-template-"
               "version, resolved to a number) or the version --image-id will create from",
        "required": {"asg": "str", "template": "str|null", "version_from": "str|null",
                     "version_from_number": "int|null", "version": "int|null",
                     "image_id": "str|null", "source_version": "int|null",
                     "latest_version": "int|null", "mixed_policy": "bool"},
    },
    "version.created": {
        "level": "info",
        "doc": "--image-id: the launch template version of this run, created (or found, "
               "`reused`, when a resumed run had created it before)",
        "required": {"template": "str|null", "version": "int", "source_version": "int|null",
                     "image_id": "str|null", "reused": "bool"},
    },
    "version.set": {
        "level": "info",
        "doc": "the target ASG was set to a launch template version (`reason` deploy), or "
               "back to the one it ran before (`reason` rollback)",
        "required": {"asg": "str", "template": "str|null", "version": "int", "reason": "str"},
    },
    "processes.resumed": {
        "level": "info",
        "doc": "--resume-processes: suspended scaling processes resumed for the run",
        "required": {"asg": "str", "processes": "list[str]"},
    },
    "processes.suspended": {
        "level": "info",
        "doc": "--resume-processes: the processes resumed for the run suspended again",
        "required": {"asg": "str", "processes": "list[str]"},
    },
    "wait.instance_lost": {
        "level": "warning",
        "doc": "an instance left the target ASG before it was ready (e.g. a launch lifecycle "
               "hook's ABANDON); the wait goes on for its replacement",
        "required": {"asg": "str", "instance_id": "str", "last_state": "str", "state": "str"},
    },
    "alarms.checked": {
        "level": "info",
        "doc": "inspect: every watched CloudWatch alarm exists and none is in ALARM",
        "required": {"alarms": "list[str]", "states": "object"},
    },
    "alarm.fired": {
        "level": "error",
        "doc": "a watched alarm is in ALARM during a wait: the state fails",
        "required": {"state": "str", "alarm": "str", "reason": "str", "since": "str"},
    },
    "bake.skipped": {
        "level": "info",
        "doc": "bake time 0: the bake state passes at once, no API call",
        "required": {"state": "str", "reason": "str"},
    },
    "bake.started": {
        "level": "info",
        "doc": "the new instances must keep serving for `seconds`",
        "required": {"state": "str", "asg": "str", "seconds": "number",
                     "instance_ids": "list[str]", "load_balancers": "list[str]"},
    },
    "bake.finished": {
        "level": "info",
        "doc": "the new instances kept serving for the whole bake time",
        "required": {"state": "str", "asg": "str", "seconds": "number", "instances": "int"},
    },
    "approval.pending": {
        "level": "info",
        "doc": "an approval state waits for a decision (or pauses): `command` approves it",
        "required": {"state": "str", "command": "str", "reject": "str", "pause": "bool",
                     "timeout_s": "number|null"},
    },
    "approval.decided": {
        "level": "info",
        "doc": "an approval state took `abfsm approve` / `abfsm reject`: who, when, why",
        "required": {"state": "str", "decision": "str", "by": "str", "at": "str",
                     "reason": "str|null"},
    },
    "hook.started": {
        "level": "info",
        "doc": "a hook state runs its command (argv, working directory, timeout)",
        "required": {"state": "str", "command": "list[str]", "cwd": "str", "timeout_s": "number"},
    },
    "hook.output": {
        "level": "info",
        "doc": "one line the hook's command wrote (stdout and stderr together)",
        "required": {"state": "str", "line": "str"},
    },
    "hook.passed": {
        "level": "info",
        "doc": "the hook's command exited 0",
        "required": {"state": "str", "command": "list[str]", "duration_s": "number"},
    },
    "hook.failed": {
        "level": "error",
        "doc": "the hook's command exited non-zero: the outcome is `failed`",
        "required": {"state": "str", "command": "list[str]", "exit_code": "int",
                     "duration_s": "number"},
    },
    "http_check.started": {
        "level": "info",
        "doc": "an HTTP check begins: the URLs asked, the status expected, passes needed",
        "required": {"state": "str", "urls": "list[str]", "expect_status": "int",
                     "successes": "int"},
    },
    "http_check.passed": {
        "level": "info",
        "doc": "every target answered as expected `successes` times in a row",
        "required": {"state": "str", "urls": "list[str]", "successes": "int"},
    },
    "http_check.failed": {
        "level": "error",
        "doc": "the state's timeout passed first: each failing target, its last answer and when",
        "required": {"state": "str", "timeout_s": "number", "targets": "list[object]"},
    },
    "run.finished": {
        "level": "info",
        "doc": "the outcome: exit code, duration, path of states, error, next steps",
        "required": {"outcome": "str", "exit_code": "int", "duration_s": "number",
                     "path": "list[object]", "final_state": "str", "failed_state": "str|null",
                     "error": "str|null", "active": "str|null", "target": "str|null",
                     "active_count": "int", "target_count": "int", "lock": "str",
                     "next": "list[str]", "dry_run": "bool"},
        # `description`: the final state's wording from the spec; `changed`: the symbolic
        # resources (asg:target, asg:active, ...) the states run declare mutating calls on.
        "optional": {"description": "str", "changed": "list[str]"},
    },
    "notify.failed": {
        "level": "warning",
        "doc": "a --notify sink could not be reached (logged once per sink; the run goes on, "
               "its exit code unchanged); `target` is redacted",
        "required": {"sink": "str", "target": "str", "reason": "str"},
    },
    "demo.ready": {
        "level": "info",
        "doc": "abfsm demo: the emulator and its environment are up",
        "required": {"endpoint": "str", "created": "object", "before": "object"},
        # the world model's figures (scale, boot_s, health_check_s, draining_s); null: --fast
        "optional": {"world": "object|null"},
    },
    "demo.after": {
        "level": "info",
        "doc": "abfsm demo: what AWS shows after the run",
        "required": {"after": "object", "lock_left": "bool"},
    },
}


def validate(event: Any) -> list[str]:
    """The problems of one parsed log line against the schema; [] when it conforms."""
    if not isinstance(event, Mapping):
        return [f"not a JSON object: {type(event).__name__}"]
    name = event.get("event")
    if not isinstance(name, str):
        return [f"'event' missing or not a string: {name!r}"]
    spec = EVENTS.get(name)
    if spec is None:
        return [f"{name}: unknown event (not in abfsm.log_schema.EVENTS)"]
    problems: list[str] = []
    common = {k: t for k, t in COMMON.items() if not (name in RUNLESS and k in ("run_id", "env"))}
    required = {**common, **spec["required"]}
    optional = {**spec.get("optional", {})}
    if name in RUNLESS:
        optional.update(run_id="str", env="str")
    for key, type_name in required.items():
        if key not in event:
            problems.append(f"{name}: missing key {key!r}")
        elif not is_type(event[key], type_name):
            problems.append(f"{name}: {key}={event[key]!r} is not {type_name}")
    for key, type_name in optional.items():
        if key in event and not is_type(event[key], type_name):
            problems.append(f"{name}: {key}={event[key]!r} is not {type_name}")
    for key in event:
        if key not in required and key not in optional:
            problems.append(f"{name}: undocumented key {key!r}")
    level = event.get("level")
    if isinstance(level, str) and level != spec["level"]:
        problems.append(f"{name}: level {level!r}, documented as {spec['level']!r}")
    ts = event.get("ts")
    if isinstance(ts, str) and not _is_utc_iso(ts):
        problems.append(f"{name}: ts {ts!r} is not an ISO 8601 UTC time")
    return problems


def is_type(value: Any, type_name: str) -> bool:
    """Whether a JSON value has a schema type (`str`, `list[int]`, `object|null`, ...)."""
    return any(_is_one(value, t.strip()) for t in type_name.split("|"))


def _is_one(value: Any, t: str) -> bool:
    if t.startswith("list[") and t.endswith("]"):
        return isinstance(value, list) and all(_is_one(v, t[5:-1]) for v in value)
    checks = {
        "null": lambda v: v is None,
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "object": lambda v: isinstance(v, Mapping),
        "list": lambda v: isinstance(v, list),
    }
    if t not in checks:
        raise ValueError(f"unknown schema type {t!r}")
    return bool(checks[t](value))


def _is_utc_iso(text: str) -> bool:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.utcoffset() is not None and not moment.utcoffset()


def markdown_table() -> str:
    """The README's table of events: name, level, meaning, keys (optional ones in brackets)."""
    rows = ["| event | level | when | keys (besides ts, level, event, run_id, env) |",
            "|---|---|---|---|"]
    for name, spec in EVENTS.items():
        keys = [f"`{k}` {_shown(t)}" for k, t in spec["required"].items()]
        keys += [f"[`{k}` {_shown(t)}]" for k, t in spec.get("optional", {}).items()]
        rows.append(f"| `{name}` | {spec['level']} | {spec['doc']} | {', '.join(keys) or '-'} |")
    return "\n".join(rows) + "\n"


def _shown(type_name: str) -> str:
    return type_name.replace("|", " or ")  # a bare | would split a markdown table cell
