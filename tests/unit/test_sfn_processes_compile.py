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


def _rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A Choice rule and every rule nested in it (And / Or / Not)."""
    out = [rule]
    for key in ("And", "Or"):
        for sub in rule.get(key, []):
            out += _rules(sub)
    if "Not" in rule:
        out += _rules(rule["Not"])
    return out


def _targets(state: dict[str, Any]) -> list[str]:
    return [state.get("Next"), state.get("Default"),
            *(c["Next"] for c in state.get("Choices", []))]


def test_process_calls_happen_only_under_resume_processes():
    """Every ResumeProcesses / SuspendProcesses task is reached only from a Choice rule that
    requires --resume-processes: without the flag the machine never changes a process."""
    states = _states()
    calls = {name for name, st in states.items()
             if st.get("Resource", "").endswith(("resumeProcesses", "suspendProcesses"))}
    assert len(calls) == 5  # resume: scale, empty, drain; suspend: the target, the old ASG
    for name in calls:
        sources = [(src, st) for src, st in states.items() if name in _targets(st)
                   and src not in calls]
        assert sources, name
        for src, st in sources:
            assert st["Type"] == "Choice", (name, src)
            [rule] = [c for c in st["Choices"] if c["Next"] == name]
            assert RESUME_FLAG in _rules(rule), (name, src)
            assert st.get("Default") != name


def test_scaling_processes_are_never_an_empty_list():
    """An empty ScalingProcesses means *every* process to AWS: resume lists are literal and
    non-empty; suspend lists come from $.procs, whose choice requires a count above 0."""
    states = _states()
    for name, st in states.items():
        params = st.get("Parameters", {})
        if st.get("Resource", "").endswith("resumeProcesses"):
            assert params["ScalingProcesses"] in (["Launch"], ["Terminate"]), name
        if st.get("Resource", "").endswith("suspendProcesses"):
            role = params["ScalingProcesses.$"].split(".")[2]  # $.procs.<role>.names
            rules = [r for src in states.values() if src["Type"] == "Choice"
                     for c in src["Choices"] if c["Next"] == name for r in _rules(c)]
            assert {"Variable": f"$.procs.{role}.n", "NumericGreaterThan": 0} in rules, name


def test_no_jsonpath_filter_expressions():
    """No JSONPath filter or recursive descent anywhere (Choice cannot use them; the machine
    counts and matches with inline Maps and intrinsics instead)."""
    text = json.dumps(_states())
    assert "[?" not in text and ".." not in text.replace("...", "")
