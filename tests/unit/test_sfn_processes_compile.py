"""The compiled shape of the process, --single-asg, --clean-up and --wait-for-scale-down
parts of the packaged machine (no AWS): what an execution on moto cannot show."""

from __future__ import annotations

import json
from typing import Any

from abfsm.actions import ACTIONS
from abfsm.sfn.compiler import compile_spec
from abfsm.spec import load_spec

RESUME_FLAG = {"Variable": "$.settings.resume_processes", "BooleanEquals": True}


def _states() -> dict[str, Any]:
    return dict(compile_spec(load_spec(None, ACTIONS))["States"])


START = compile_spec(load_spec(None, ACTIONS))["StartAt"]


def _rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A Choice rule and every rule nested in it (And / Or / Not)."""
    out = [rule]
    for key in ("And", "Or"):
        for sub in rule.get(key, []):
            out += _rules(sub)
    if "Not" in rule:
        out += _rules(rule["Not"])
    return out


def _reachable_without(states: dict[str, Any], start: str, cut: dict[str, Any]) -> set[str]:
    """The states reached from `start` when no Choice rule containing `cut` is taken."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        st = states[name]
        todo += [st[k] for k in ("Next", "Default") if k in st]
        todo += [c["Next"] for c in st.get("Catch", [])]
        todo += [c["Next"] for c in st.get("Choices", []) if cut not in _rules(c)]
    return seen


def _calls(states: dict[str, Any], api: str) -> dict[str, dict[str, Any]]:
    return {name: st for name, st in states.items() if st.get("Resource", "").endswith(api)}


def test_process_calls_happen_only_under_resume_processes():
    """No ResumeProcesses / SuspendProcesses task is reached without a Choice rule that
    requires --resume-processes: without the flag the machine never changes a process."""
    states = _states()
    calls = _calls(states, "resumeProcesses") | _calls(states, "suspendProcesses")
    assert len(calls) == 6  # resume: scale, empty, drain; suspend: drain (2), rollback
    assert calls.keys() <= _reachable_without(states, START, {})
    assert not calls.keys() & _reachable_without(states, START, RESUME_FLAG)


def test_scaling_processes_are_never_an_empty_list():
    """An empty ScalingProcesses means *every* process to AWS: resume lists are literal and
    non-empty; a suspend of $.procs.ROLE.names is reached only through a rule requiring
    $.procs.ROLE.n above 0."""
    states = _states()
    for name, st in _calls(states, "resumeProcesses").items():
        assert st["Parameters"]["ScalingProcesses"] in (["Launch"], ["Terminate"]), name
    for name, st in _calls(states, "suspendProcesses").items():
        role = st["Parameters"]["ScalingProcesses.$"].split(".")[2]  # $.procs.<role>.names
        cut = {"Variable": f"$.procs.{role}.n", "NumericGreaterThan": 0}
        assert name not in _reachable_without(states, START, cut), name


def test_no_jsonpath_filter_expressions():
    """No JSONPath filter or recursive descent anywhere (Choice cannot use them; the machine
    counts and matches with inline Maps and intrinsics instead)."""
    text = json.dumps(_states())
    assert "[?" not in text and ".." not in text.replace("...", "")
