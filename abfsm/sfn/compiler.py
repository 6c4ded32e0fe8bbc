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

The record follows the execution. Each move SRC --trigger--> DST passes through the Pass
`SRC.on-TRIGGER`, which puts the move in `$.move`; each spec state's entry (the ASL state
named exactly as the spec state) appends it to the history (`$.hist`), builds the run record
(state, heartbeat = the time it was entered, history, plan) and saves it to ENV.lock with
IfMatch on the tracked ETag (`$.lock.etag`), then runs the action (`STATE.act` onwards). A
save whose condition fails (the lock was removed or replaced: `abfsm unlock --force`) goes
to `STATE.lock-lost`: the execution fails with abfsm.StateFailed, saying so, and changes
nothing more. The initial state's entry starts the history and the plan empty instead.

The machine starts at `abfsm.resume?` (resume_entry()): an execution whose input carries
`resume` (`abfsm sfn start --resume`) takes the lock over with IfMatch on the ETag the CLI
read (a lock changed since: abfsm.Refused, nothing changed), records the move `resume` and
re-enters the named state with the saved plan; any other execution goes to the initial state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from abfsm.errors import SpecError
from abfsm.sfn.fragments import (
    FRAGMENTS, NOW, Ctx, NoAslForm, State, States, lock_key, record, save, task,
)
from abfsm.spec import Spec

ERROR_REFUSED, ERROR_FAILED, ERROR_ROLLED_BACK = "abfsm.Refused", "abfsm.StateFailed", "abfsm.RolledBack"
ERRORS = {ERROR_REFUSED: 3, ERROR_FAILED: 1, ERROR_ROLLED_BACK: 1}
_RELEASE_FAILED = "abfsm.release-failed"
_LOCK_LOST = "abfsm.lock-lost"
RESUME = "abfsm.resume?"  # the machine's StartAt: resume_entry()
ACT = "act"  # STATE.act: where a state's action begins, after its entry saved the record


def compile_spec(spec: Spec) -> dict[str, Any]:
    """The ASL document of `spec` (SpecError, exit 2, naming a state without an ASL form)."""
    states: States = resume_entry(spec, spec.initial)
    for name in spec.working_states:
        st = spec.states[name]
        fragment = FRAGMENTS.get(st.action or "")
        if fragment is None:
            raise SpecError(spec.path, f"states.{name}.action",
                            f"{st.action!r} has no Step Functions form; the sfn engine compiles "
                            f"only the built-in AWS actions ({', '.join(sorted(FRAGMENTS))})")
        routes = _routes(spec, name)
        try:
            action = fragment(Ctx(name, st.params, routes))
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
                      "`abfsm sfn compile`", "StartAt": RESUME,
           "States": _reachable(RESUME, states)}
    return doc


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
                seen.setdefault((service, api), None)
            if "ItemProcessor" in st:
                visit(st["ItemProcessor"]["States"])

    visit(doc["States"])
    return list(seen)
