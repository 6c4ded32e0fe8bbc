"""The validated spec as one Amazon States Language state machine.

Each working state is its action's fragment (abfsm/sfn/fragments.py) wired to the spec's
transitions; its errors go to `STATE.error`, which names the state in the cause and routes
to the spec's `rollback` destination when the execution input says --rollback-on-failure
(and the spec declares one from that state), else to its `fail` destination. Each final
state becomes what the CLI does at the end of a run: a success releases the lock (run record
archived, lock deleted with IfMatch) and succeeds; a failure that keeps the lock saves the
record there; the others release it; all failures end in a Fail state whose error is
abfsm.Refused (exit 3), abfsm.RolledBack or abfsm.StateFailed (exit 1). States no path
reaches (e.g. `planned`: `sfn start` refuses --dry-run) are left out, as AWS requires.

The machine starts at `abfsm.input` (input_states()), so an execution started by anything
(EventBridge, API Gateway, the console) needs only `{"settings": {"environment": ...,
"lock_bucket_name": ...}}`: it refuses an input without those two strings, fills run_id
(the execution's name), started_at (its start time), every other setting's default and
`limits` (from the default timeouts: ASL has no division), and refuses what `sfn start`
refuses (--dry-run, what this preview does not compile), each with the error
abfsm.InvalidInput (exit 2) naming the field, before any AWS call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from abfsm.context import Settings
from abfsm.errors import SpecError
from abfsm.sfn.fragments import FRAGMENTS, Ctx, NoAslForm, State, States, lock_key, record, task
from abfsm.spec import Spec

ERROR_REFUSED, ERROR_FAILED, ERROR_ROLLED_BACK = "abfsm.Refused", "abfsm.StateFailed", "abfsm.RolledBack"
ERROR_INPUT = "abfsm.InvalidInput"  # the execution input is unusable: exit 2, nothing changed
ERRORS = {ERROR_REFUSED: 3, ERROR_FAILED: 1, ERROR_ROLLED_BACK: 1, ERROR_INPUT: 2}
_RELEASE_FAILED = "abfsm.release-failed"
INPUT = "abfsm.input"  # the machine's StartAt: input_states()
REQUIRED = ("environment", "lock_bucket_name")  # the settings an execution input must give


def compile_spec(spec: Spec) -> dict[str, Any]:
    """The ASL document of `spec` (SpecError, exit 2, naming a state without an ASL form)."""
    states: States = input_states(spec.initial)
    for name in spec.working_states:
        st = spec.states[name]
        fragment = FRAGMENTS.get(st.action or "")
        if fragment is None:
            raise SpecError(spec.path, f"states.{name}.action",
                            f"{st.action!r} has no Step Functions form; the sfn engine compiles "
                            f"only the built-in AWS actions ({', '.join(sorted(FRAGMENTS))})")
        routes = _routes(spec, name)
        try:
            states |= fragment(Ctx(name, st.params, routes))
        except NoAslForm as exc:
            raise SpecError(spec.path, f"states.{name}.params", str(exc)) from None
        states |= _error_router(spec, name, routes)
    for name in spec.states:
        if spec.is_final(name):
            states |= _final(spec, name)
    states[_RELEASE_FAILED] = {"Type": "Fail", "Error": ERROR_FAILED,
                               "Cause": "the lock could not be saved or released"}
    doc = {"Comment": f"abfsm: {spec.path} (spec version {spec.version}), compiled by "
                      "`abfsm sfn compile`", "StartAt": INPUT,
           "States": _reachable(INPUT, states)}
    return doc


LIMITS_FROM = ("update_timeout", "health_check_timeout")  # the settings wait_limits() reads


def wait_limits(settings: Settings) -> dict[str, int]:
    """The waits' `limits`: `interval` = --update-timeout in whole seconds, `polls` =
    --health-check-timeout / interval + 1."""
    interval = max(1, math.ceil(settings.update_timeout))
    return {"interval": interval, "polls": math.floor(settings.health_check_timeout / interval) + 1}


def input_states(next_: str) -> States:
    """`abfsm.input` and its chain: the execution input checked and completed, then `next_`.

    1. `abfsm.input`: settings.environment and settings.lock_bucket_name must be non-empty
       strings, else Fail `abfsm.input.FIELD` (abfsm.InvalidInput naming the field).
    2. `.defaults` / `.settings` / `.fill`: the input shallow-merged over the defaults (run_id
       = the execution's name, started_at = its start time to the second, `limits` from the
       default timeouts) and settings over every setting's default (States.JsonMerge); keys
       the caller gives win, any other key of the input is kept.
    3. `.lengths` / `.check`: refused (Fail `abfsm.input.FIELD`) when `limits` lacks a whole
       interval or polls of at least 1, when dry_run is set, or when a setting this preview
       does not compile (engine.UNSUPPORTED) is not at its default.
    """
    def name(part: str) -> str:
        return f"{INPUT}.{part}"

    defaults = {k: v for k, v in Settings("-").to_dict().items() if k not in REQUIRED}
    states: States = {INPUT: {"Type": "Choice", "Choices": [
        rule for field in REQUIRED for rule in _non_empty_string(f"$.settings.{field}", name(field))],
        "Default": name("defaults")}}
    for field in REQUIRED:
        states[name(field)] = _invalid(f"settings.{field} is required, a non-empty string")
    start_time = "States.ArrayGetItem(States.StringSplit($$.Execution.StartTime, '.Z'), 0)"
    states |= {
        name("defaults"): {"Type": "Pass", "Parameters": {
            "defaults": {"run_id.$": "$$.Execution.Name",
                         "started_at.$": f"States.Format('{{}}Z', {start_time})",
                         "limits": wait_limits(Settings("-")), "settings": defaults},
            "input.$": "$"}, "ResultPath": "$", "Next": name("settings")},
        name("settings"): {"Type": "Pass", "Parameters": {
            "settings.$": "States.JsonMerge($.defaults.settings, $.input.settings, false)"},
            "ResultPath": "$.merged", "Next": name("fill")},
        name("fill"): {"Type": "Pass", "Parameters": {
            "doc.$": "States.JsonMerge(States.JsonMerge($.defaults, $.input, false), $.merged, "
                     "false)"}, "OutputPath": "$.doc", "Next": name("lengths")},
    }
    refused = refused_settings()
    lists = [field for field, _ in refused if isinstance(defaults[field], list)]
    states[name("lengths")] = {"Type": "Pass", "Parameters": {
        f"{field}.$": f"States.ArrayLength($.settings.{field})" for field in lists},
        "ResultPath": "$.input_lengths", "Next": name("check")}
    choices: list[State] = []
    for key in ("interval", "polls"):
        path = f"$.limits.{key}"
        choices += [{"Not": {"Variable": path, "IsPresent": True}, "Next": name("limits")},
                    {"Not": {"Variable": path, "IsNumeric": True}, "Next": name("limits")},
                    {"Variable": path, "NumericLessThan": 1, "Next": name("limits")}]
    fails: States = {}
    fails[name("limits")] = _invalid(
        "limits: needs interval (seconds between polls) and polls (polls before a wait "
        "fails), whole numbers of at least 1; leave it out for the default timeouts")
    for field, why in refused:
        value = defaults[field]
        path = f"$.input_lengths.{field}" if field in lists else f"$.settings.{field}"
        if isinstance(value, bool):
            test: State = {"Variable": path, "BooleanEquals": not value}
        elif isinstance(value, list):
            test = {"Variable": path, "NumericGreaterThan": 0}
        elif value is None:
            test = {"Not": {"Variable": path, "IsNull": True}}
        else:
            test = {"Not": {"Variable": path, "NumericEquals": value}}
        choices.append({**test, "Next": name(field)})
        fails[name(field)] = _invalid(f"settings.{field}: {why}")
    states[name("check")] = {"Type": "Choice", "Choices": choices, "Default": next_}
    return states | fails


def _non_empty_string(path: str, invalid: str) -> list[State]:
    """Choice rules sending `path` to `invalid` unless it is a non-empty string (in order:
    a comparison on a missing path is an error in AWS, so presence is tested first)."""
    return [{"Not": {"Variable": path, "IsPresent": True}, "Next": invalid},
            {"Not": {"Variable": path, "IsString": True}, "Next": invalid},
            {"Variable": path, "StringEquals": "", "Next": invalid}]


def _invalid(cause: str) -> State:
    return {"Type": "Fail", "Error": ERROR_INPUT, "Cause": f"execution input: {cause}"}


def refused_settings() -> list[tuple[str, str]]:
    """(setting, why) for each setting `sfn start` refuses away from its default: dry_run,
    and each one engine.UNSUPPORTED names (found by trying a value other than the default)."""
    from abfsm.sfn.engine import UNSUPPORTED, unsupported_reason  # engine imports this module

    defaults = Settings("-").to_dict()
    out = [("dry_run", "an execution changes AWS; for the plan run `abfsm deploy --dry-run` "
                       "with the same flags")]
    for f in fields(Settings):
        if f.name in REQUIRED or f.name == "dry_run":
            continue
        value = defaults[f.name]
        probe: Any = (not value if isinstance(value, bool) else ["x"] if isinstance(value, list)
                      else "x" if value is None or isinstance(value, str) else value + 1)
        probed = Settings("-", **{f.name: probe})
        for flag, used in UNSUPPORTED:
            if used(probed):
                out.append((f.name, unsupported_reason(flag)))
                break
    return out


def to_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def _routes(spec: Spec, state: str) -> dict[str, str]:
    return {t.trigger: t.dest for t in spec.transitions if t.source == state}


def _error_router(spec: Spec, state: str, routes: Mapping[str, str]) -> States:
    router: State = {"Type": "Choice", "Choices": [], "Default": routes.get("fail", _RELEASE_FAILED)}
    if "rollback" in routes:
        router["Choices"] = [{"Variable": "$.settings.rollback_on_failure", "BooleanEquals": True,
                              "Next": routes["rollback"]}]
    else:
        del router["Choices"]
        router = {"Type": "Pass", "Next": router["Default"]}
    return {
        f"{state}.error": {"Type": "Pass", "Parameters": {
            "Error.$": "$.error.Error",
            "Cause.$": f"States.Format('{state}: {{}}', $.error.Cause)"},
            "ResultPath": "$.error", "Next": f"{state}.route"},
        f"{state}.route": router,
    }


def _error_of(spec: Spec, final: str) -> str:
    st = spec.states[final]
    if st.exit == 3:
        return ERROR_REFUSED
    rolled = {t.dest for t in spec.transitions  # where the rollback action's outcome leads
              if spec.states[t.source].action == "rollback" and t.trigger not in ("fail", "refuse")}
    return ERROR_ROLLED_BACK if final in rolled else ERROR_FAILED


def _final(spec: Spec, name: str) -> States:
    st = spec.states[name]
    ctx = Ctx(name, {}, {})
    end = f"{name}.end"
    if st.failed:
        ending: State = {"Type": "Fail", "Error": _error_of(spec, name), "CausePath": "$.error.Cause"}
    else:
        ending = {"Type": "Succeed", "OutputPath": "$.plan"}  # the output: what inspect decided
    lock_held = {"Variable": "$.lock.etag", "IsPresent": True}
    out: States = {
        name: {"Type": "Choice", "Choices": [{**lock_held, "Next": f"{name}.record"}],
               "Default": end},
        f"{name}.record": {"Type": "Pass", "Parameters": record(name, name, error=st.failed),
                           "ResultPath": "$.record", "Next": f"{name}.save"},
        end: ending,
    }
    if st.keeps_lock:
        out[f"{name}.save"] = task(ctx, "s3", "putObject", {
            "Bucket.$": "$.settings.lock_bucket_name", "Key.$": lock_key(),
            "Body.$": "States.JsonToString($.record)", "IfMatch.$": "$.lock.etag",
            "ContentType": "application/json"}, end, catch=_RELEASE_FAILED)
    else:
        out[f"{name}.save"] = task(ctx, "s3", "putObject", {
            "Bucket.$": "$.settings.lock_bucket_name",
            "Key.$": "States.Format('{}/runs/{}.json', $.settings.environment, $.run_id)",
            "Body.$": "States.JsonToString($.record)", "ContentType": "application/json"},
            f"{name}.release", catch=_RELEASE_FAILED)
        out[f"{name}.release"] = task(ctx, "s3", "deleteObject", {
            "Bucket.$": "$.settings.lock_bucket_name", "Key.$": lock_key(),
            "IfMatch.$": "$.lock.etag"}, end, catch=_RELEASE_FAILED)
    return out


def _reachable(start: str, states: States) -> States:
    """`states` without those no path from `start` reaches (the spec's order kept)."""
    seen: dict[str, None] = {}
    todo = [start]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen[name] = None
        todo += _targets(states[name])
    return {name: st for name, st in states.items() if name in seen}


def _targets(state: State) -> list[str]:
    out = [state[k] for k in ("Next", "Default") if k in state]
    out += [c["Next"] for c in state.get("Choices", [])]
    out += [c["Next"] for c in state.get("Catch", [])]
    return out


def state_count(doc: Mapping[str, Any]) -> int:
    return len(doc["States"])


def used_integrations(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(aws-sdk service, API) pairs the machine calls, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}

    def visit(states: Mapping[str, Any]) -> None:
        for st in states.values():
            resource = st.get("Resource", "")
            if resource.startswith("arn:aws:states:::aws-sdk:"):
                service, api = resource.rsplit(":", 2)[-2:]
                seen.setdefault((service, api), None)
            if "ItemProcessor" in st:
                visit(st["ItemProcessor"]["States"])

    visit(doc["States"])
    return list(seen)
