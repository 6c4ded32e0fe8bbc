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

The record follows the execution. Each move SRC --trigger--> DST passes through the Pass
`SRC.on-TRIGGER`, which puts the move in `$.move`; each spec state's entry (the ASL state
named exactly as the spec state) appends it to the history (`$.hist`), builds the run record
(state, heartbeat = the time it was entered, history, plan) and saves it to ENV.lock with
IfMatch on the tracked ETag (`$.lock.etag`), then runs the action (`STATE.act` onwards). A
save whose condition fails (the lock was removed or replaced: `abfsm unlock --force`) goes
to `STATE.lock-lost`: the execution fails with abfsm.StateFailed, saying so, and changes
nothing more. The initial state's entry starts the history and the plan empty instead.

From there it goes to `abfsm.resume?` (resume_entry()): an execution whose input carries
`resume` (`abfsm sfn start --resume`) takes the lock over with IfMatch on the ETag the CLI
read (a lock changed since: abfsm.Refused, nothing changed), records the move `resume` and
re-enters the named state with the saved plan; any other execution goes to the initial state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from abfsm.context import Settings
from abfsm.errors import SpecError
from abfsm.sfn.fragments import (
    FRAGMENTS, NOW, Ctx, NoAslForm, State, States, lock_key, record, save, task,
)
from abfsm.spec import Spec, timeout_settings

ERROR_REFUSED, ERROR_FAILED, ERROR_ROLLED_BACK = "abfsm.Refused", "abfsm.StateFailed", "abfsm.RolledBack"
ERROR_INPUT = "abfsm.InvalidInput"  # the execution input is unusable: exit 2, nothing changed
ERRORS = {ERROR_REFUSED: 3, ERROR_FAILED: 1, ERROR_ROLLED_BACK: 1, ERROR_INPUT: 2}
_RELEASE_FAILED = "abfsm.release-failed"
_LOCK_LOST = "abfsm.lock-lost"
RESUME = "abfsm.resume?"  # after abfsm.input: resume_entry()
ACT = "act"  # STATE.act: where a state's action begins, after its entry saved the record
INPUT = "abfsm.input"  # the machine's StartAt: input_states(), then RESUME
REQUIRED = ("environment", "lock_bucket_name")  # the settings an execution input must give


def compile_spec(spec: Spec) -> dict[str, Any]:
    """The ASL document of `spec` (SpecError, exit 2, naming a state without an ASL form)."""
    states: States = input_states(RESUME) | resume_entry(spec, spec.initial)
    for name in spec.working_states:
        st = spec.states[name]
        fragment = FRAGMENTS.get(st.action or "")
        if fragment is None:
            raise SpecError(spec.path, f"states.{name}.action",
                            f"{st.action!r} has no Step Functions form; the sfn engine compiles "
                            f"only the built-in AWS actions ({', '.join(sorted(FRAGMENTS))})")
        routes = _routes(spec, name)
        try:
            action = fragment(Ctx(name, st.params, routes, st.timeout, {
                t.trigger: t.dest for t in spec.transitions if t.source == name}))
        except NoAslForm as exc:
            raise SpecError(spec.path, f"states.{name}.params", str(exc)) from None
        states |= _entry(spec, name, action)
        states |= _error_router(spec, name, routes)
        states |= _moves(spec, name)
    for name in spec.states:
        if spec.is_final(name):
            states |= _final(spec, name)
    states[_RELEASE_FAILED] = {"Type": "Fail", "Error": ERROR_FAILED,
                               "Cause": "the lock could not be saved or released"}
    states[_LOCK_LOST] = {"Type": "Fail", "Error": ERROR_FAILED, "CausePath": "$.error.Cause"}
    doc = {"Comment": f"abfsm: {spec.path} (spec version {spec.version}), compiled by "
                      "`abfsm sfn compile`", "StartAt": INPUT,
           "States": _reachable(INPUT, states)}
    return doc


LIMITS_FROM = ("update_timeout", "health_check_timeout")  # the settings wait_limits() reads


def wait_limits(settings: Settings) -> dict[str, Any]:
    """The waits' `limits`: `interval` = --update-timeout in whole seconds, `polls` =
    --health-check-timeout / interval + 1, and `seconds`: each timeout a state may name, in
    whole seconds (an approval's TimeoutSecondsPath, fragments.approval)."""
    interval = max(1, math.ceil(settings.update_timeout))
    seconds = {name: max(1, math.ceil(getattr(settings, name)))
               for name in sorted(timeout_settings())}
    return {"interval": interval, "polls": math.floor(settings.health_check_timeout / interval) + 1,
            "seconds": seconds}


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
    """Each outcome of `state` -> the Pass recording that move (`_moves`)."""
    return {t.trigger: move_name(state, t.trigger) for t in spec.transitions if t.source == state}


def move_name(src: str, trigger: str) -> str:
    return f"{src}.on-{trigger}"


def _moves(spec: Spec, state: str) -> States:
    """`STATE.on-TRIGGER` for each transition from `state`: the move in `$.move`, then its
    destination (whose entry puts it on the record's history)."""
    return {move_name(state, t.trigger): {
        "Type": "Pass", "Parameters": {"at.$": NOW, "src": state, "dst": t.dest,
                                       "trigger": t.trigger},
        "ResultPath": "$.move", "Next": t.dest} for t in spec.transitions if t.source == state}


def _append_history() -> State:
    """Parameters giving `$.hist` with `$.move` appended (history text, list, the count)."""
    entry = "States.JsonToString($.move)"
    return {"text.$": f"States.Format('{{}}{{}},', $.hist.text, {entry})",
            "list.$": f"States.StringToJson(States.Format('[{{}}{{}}]', $.hist.text, {entry}))",
            "ctx": {"count.$": "$.count"}}


def _entry(spec: Spec, name: str, action: States) -> States:
    """The entry of working state `name`, then its action (its first state renamed
    `NAME.act`), and `NAME.lock-lost`.

    The initial state's entry starts an empty history and plan (its action takes the lock);
    any other's appends `$.move` to the history and saves the record with IfMatch."""
    ctx = Ctx(name, {}, {})
    act = f"{name}.{ACT}"
    if name not in action:  # a fragment's first state is named after its spec state
        raise AssertionError(f"the ASL form of {name} has no state named {name!r}")
    body = {(act if key == name else key): st for key, st in action.items()}
    if name == spec.initial:
        fresh = {"hist": {"text": "", "list": [], "ctx": {"count": {}}}, "plan": {}, "count": {}}
        head: States = {
            name: {"Type": "Pass", "Parameters": {"fresh": fresh, "input.$": "$"},
                   "ResultPath": "$", "Next": f"{name}.fresh"},
            f"{name}.fresh": {"Type": "Pass", "Parameters": {
                "doc.$": "States.JsonMerge($.input, $.fresh, false)"}, "OutputPath": "$.doc",
                "Next": act},
        }
    else:
        head = {
            name: {"Type": "Pass", "Parameters": _append_history(), "ResultPath": "$.hist",
                   "Next": f"{name}.record"},
            f"{name}.record": {"Type": "Pass", "Parameters": record(name, "running"),
                               "ResultPath": "$.record", "Next": f"{name}.save"},
            f"{name}.save": save(ctx, act),
        }
    lost: States = {ctx.lock_lost: {"Type": "Pass", "Parameters": {
        "Error": ERROR_FAILED,
        "Cause.$": f"States.Format('{name}: stopped, its lock was taken away: {{}}.lock was "
                   "removed or replaced (abfsm unlock --force?), so nothing more was changed "
                   "in AWS ({})', $.settings.environment, $.error.Cause)"},
        "ResultPath": "$.error", "Next": _LOCK_LOST}}
    return head | body | lost


def resume_entry(spec: Spec, next_: str) -> States:
    """`abfsm.resume?` and its states: the machine's start.

    Without `$.resume` in the input: on to `next_` (the spec's initial state). With it
    (`abfsm sfn start --resume`: `resume.state` to re-enter, `resume.from` the state the
    record was in, `resume.etag` the lock's ETag it read; plan, count and history saved):
    a state it cannot re-enter is refused; else the lock is taken over (the record rewritten
    with IfMatch on that ETag; a lock changed since is refused, nothing changed), the move
    `resume` recorded, and the state re-entered."""
    s = "abfsm.resume.{}".format
    able = resumable(spec)
    given = {"Variable": "$.resume", "IsPresent": True}
    named = [{"Variable": "$.resume.state", "StringEquals": name} for name in able]
    known: State = named[0] if len(named) == 1 else {"Or": named}
    ctx = Ctx("abfsm.resume", {}, {})
    states: States = {
        RESUME: {"Type": "Choice", "Choices": (
            ([{"And": [given, known], "Next": s("record")}] if named else [])
            + [{**given, "Next": s("unknown")}]), "Default": next_},
        s("unknown"): {"Type": "Pass", "Parameters": {
            "Error": ERROR_REFUSED,
            "Cause.$": "States.Format('resume: {} is not a state this machine re-enters "
                       f"({', '.join(able) or 'none'}); nothing was changed', $.resume.state)"},
            "ResultPath": "$.error", "Next": s("refused")},
        s("record"): {"Type": "Pass", "Parameters": record("$.resume.state", "running"),
                      "ResultPath": "$.record", "Next": s("take")},
        s("take"): save(ctx, s("move"), catch=s("changed"), etag="$.resume.etag"),
        s("changed"): {"Type": "Pass", "Parameters": {
            "Error": ERROR_REFUSED,
            "Cause.$": "States.Format('resume: {}.lock changed since abfsm sfn start --resume "
                       "read it (another run, or an unlock), so it was not taken over; "
                       "nothing was changed ({})', $.settings.environment, $.error.Cause)"},
            "ResultPath": "$.error", "Next": s("refused")},
        s("refused"): {"Type": "Fail", "Error": ERROR_REFUSED, "CausePath": "$.error.Cause"},
        s("move"): {"Type": "Pass", "Parameters": {
            "at.$": NOW, "src.$": "$.resume.from", "dst.$": "$.resume.state",
            "trigger": "resume"}, "ResultPath": "$.move", "Next": s("to")},
    }
    if named:
        states[s("to")] = {"Type": "Choice", "Choices": [
            {**rule, "Next": name} for rule, name in zip(named, able, strict=True)]}
    return states


def resumable(spec: Spec) -> list[str]:
    """The states an execution can re-enter: every working state but the initial one (the
    lock is already held)."""
    return [name for name in spec.working_states if name != spec.initial]


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
    record_of = record(name, name, error=st.failed, exit_code=st.exit)
    if _error_of(spec, name) == ERROR_ROLLED_BACK:  # the move's source is the rollback
        del record_of["failed_state.$"]
    out: States = {
        name: {"Type": "Choice", "Choices": [{**lock_held, "Next": f"{name}.history"}],
               "Default": end},
        f"{name}.history": {"Type": "Pass", "Parameters": _append_history(),
                            "ResultPath": "$.hist", "Next": f"{name}.record"},
        f"{name}.record": {"Type": "Pass", "Parameters": record_of,
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
                api = api.split(".", 1)[0]  # putObject.waitForTaskToken: the call is PutObject
                seen.setdefault((service, api), None)
            if "ItemProcessor" in st:
                visit(st["ItemProcessor"]["States"])

    visit(doc["States"])
    return list(seen)
