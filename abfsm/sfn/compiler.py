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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from abfsm.errors import SpecError
from abfsm.sfn.fragments import FRAGMENTS, Ctx, NoAslForm, State, States, lock_key, record, task
from abfsm.spec import Spec

ERROR_REFUSED, ERROR_FAILED, ERROR_ROLLED_BACK = "abfsm.Refused", "abfsm.StateFailed", "abfsm.RolledBack"
ERRORS = {ERROR_REFUSED: 3, ERROR_FAILED: 1, ERROR_ROLLED_BACK: 1}
_RELEASE_FAILED = "abfsm.release-failed"


def compile_spec(spec: Spec) -> dict[str, Any]:
    """The ASL document of `spec` (SpecError, exit 2, naming a state without an ASL form)."""
    states: States = {}
    for name in spec.working_states:
        st = spec.states[name]
        fragment = FRAGMENTS.get(st.action or "")
        if fragment is None:
            raise SpecError(spec.path, f"states.{name}.action",
                            f"{st.action!r} has no Step Functions form; the sfn engine compiles "
                            f"only the built-in AWS actions ({', '.join(sorted(FRAGMENTS))})")
        routes = _routes(spec, name)
        try:
            states |= fragment(Ctx(name, st.params, routes, st.timeout))
        except NoAslForm as exc:
            raise SpecError(spec.path, f"states.{name}.params", str(exc)) from None
        states |= _error_router(spec, name, routes)
    for name in spec.states:
        if spec.is_final(name):
            states |= _final(spec, name)
    states[_RELEASE_FAILED] = {"Type": "Fail", "Error": ERROR_FAILED,
                               "Cause": "the lock could not be saved or released"}
    doc = {"Comment": f"abfsm: {spec.path} (spec version {spec.version}), compiled by "
                      "`abfsm sfn compile`", "StartAt": spec.initial,
           "States": _reachable(spec.initial, states)}
    return doc


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
                api = api.split(".", 1)[0]  # putObject.waitForTaskToken: the call is PutObject
                seen.setdefault((service, api), None)
            if "ItemProcessor" in st:
                visit(st["ItemProcessor"]["States"])

    visit(doc["States"])
    return list(seen)
