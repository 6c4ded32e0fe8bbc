"""`abfsm sfn compile`: the spec as Amazon States Language (no AWS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from abfsm.actions import ACTIONS
from abfsm.cli import main
from abfsm.sfn.compiler import compile_spec, state_count, to_json
from abfsm.sfn.fragments import THROTTLING
from abfsm.spec import load_spec, packaged_spec_path

GOLDEN = Path(__file__).parent.parent / "golden" / "packaged.asl.json"
SERVICES = {"autoscaling", "elasticloadbalancing", "elasticloadbalancingv2", "s3", "cloudwatch"}


def _packaged() -> dict[str, Any]:
    return compile_spec(load_spec(None, ACTIONS))


def _walk(states: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for st in states.values():
        out.append(st)
        if "ItemProcessor" in st:
            out += _walk(st["ItemProcessor"]["States"])
    return out


def _keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()


def _spec_with(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    path = tmp_path / "states.yaml"
    text = packaged_spec_path().read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_spec_matches_the_golden_file():
    """The packaged spec compiles to tests/golden/packaged.asl.json (regenerate: make graph)."""
    assert to_json(_packaged()) == GOLDEN.read_text(encoding="utf-8")


def test_every_next_names_a_state_and_every_state_is_reached():
    """No dangling Next/Default/Catch target; unreachable states (planned) are left out."""
    doc = _packaged()
    states = doc["States"]
    targets = {doc["StartAt"]}
    for st in states.values():
        targets |= {st[k] for k in ("Next", "Default") if k in st}
        targets |= {c["Next"] for c in st.get("Choices", []) + st.get("Catch", [])}
    assert targets <= set(states)
    assert set(states) == targets
    assert "planned" not in states


def test_tasks_are_aws_sdk_calls_with_throttling_retries_and_a_catch():
    """Every Task is an aws-sdk integration of an allowed service (no Lambda) and retries its
    throttling errors; each top-level Task and Map catches everything else into $.error."""
    top = _packaged()["States"]
    tasks = [st for st in _walk(top) if st["Type"] == "Task"]
    assert {st["Resource"].split(":")[-2] for st in tasks} == {
        "autoscaling", "s3", "elasticloadbalancing", "elasticloadbalancingv2", "cloudwatch"}
    for st in tasks:
        service = st["Resource"].split(":")[-2]
        assert st["Resource"].startswith("arn:aws:states:::aws-sdk:") and service in SERVICES
        assert st["Retry"][0]["ErrorEquals"] == THROTTLING[service]
    for name, st in top.items():
        if st["Type"] == "Task" or any(s["Type"] == "Task" for s in _walk(
                st.get("ItemProcessor", {}).get("States", {}))):
            assert st["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
            assert st["Catch"][0]["ResultPath"] == "$.error", name


def test_jsonpath_only_no_jsonata_and_no_variables():
    """No QueryLanguage (JSONata) and no Assign anywhere in the document."""
    keys = _keys(_packaged())
    assert "QueryLanguage" not in keys and "Assign" not in keys and "Arguments" not in keys


def test_lock_is_taken_with_if_none_match_and_kept_with_if_match():
    """locked puts ENV.lock with IfNoneMatch *; failed saves it with IfMatch; done deletes it with IfMatch."""
    states = _packaged()["States"]
    assert states["locked.put"]["Parameters"]["IfNoneMatch"] == "*"
    assert states["failed.save"]["Parameters"]["IfMatch.$"] == "$.lock.etag"
    assert states["done.release"]["Parameters"]["IfMatch.$"] == "$.lock.etag"
    assert "failed.release" not in states  # failed keeps the lock


def test_errors_route_to_rollback_only_where_the_spec_declares_it():
    """scale's error goes to rollback when the input says --rollback-on-failure, else failed;
    inspect (no rollback transition) always goes to failed."""
    states = _packaged()["States"]
    route = states["scale.route"]
    assert route["Choices"] == [{"Variable": "$.settings.rollback_on_failure",
                                 "BooleanEquals": True, "Next": "scale.on-rollback"}]
    assert route["Default"] == "scale.on-fail"
    assert states["scale.on-rollback"]["Next"] == "rollback"
    assert states["scale.on-fail"]["Next"] == "failed"
    assert states["inspect.route"] == {"Type": "Pass", "Next": "inspect.on-fail"}


def test_final_states_fail_with_the_abfsm_error_names():
    """refused, failed and rolled-back end in Fail states named abfsm.Refused / StateFailed /
    RolledBack; done ends in Succeed."""
    states = _packaged()["States"]
    assert states["refused.end"]["Error"] == "abfsm.Refused"
    assert states["failed.end"]["Error"] == "abfsm.StateFailed"
    assert states["rolled-back.end"]["Error"] == "abfsm.RolledBack"
    assert states["done.end"]["Type"] == "Succeed"


def test_waits_are_wait_and_choice_loops_with_a_poll_counter():
    """wait-instances sleeps $.limits.interval and gives up after $.limits.polls polls."""
    states = _packaged()["States"]
    assert states["wait-instances.sleep"] == {"Type": "Wait", "SecondsPath": "$.limits.interval",
                                              "Next": "wait-instances.beat"}
    assert states["wait-instances.beat-save"]["Next"] == "wait-instances.alarms"
    choice = states["wait-instances.timeout?"]["Choices"][0]
    assert choice["NumericGreaterThanEqualsPath"] == "$.limits.polls"
    assert states["wait-instances.timed-out"]["Next"] == "wait-instances.error"


def test_state_count_of_the_packaged_machine():
    """The packaged machine has a known number of ASL states (the golden file's)."""
    assert state_count(_packaged()) == len(json.loads(GOLDEN.read_text())["States"]) == 385


def test_a_hook_state_is_refused_at_compile_with_exit_2(tmp_path, capsys):
    """A state whose action has no ASL form (hook) exits 2 naming the state."""
    spec = _spec_with(
        tmp_path, ("  bake:           {action: bake}",
                   "  bake:           {action: hook, params: {command: [\"true\"]}}"),
        ("{trigger: baked,           source: bake,           dest: drain}",
         "{trigger: passed, source: bake, dest: drain}\n"
         "  - {trigger: failed, source: bake, dest: failed}"))
    assert main(["sfn", "compile", "--spec", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "states.bake.action" in err and "'hook' has no Step Functions form" in err


def test_compile_writes_the_output_file(tmp_path):
    """--output FILE gets the same document as stdout would."""
    out = tmp_path / "m.asl.json"
    assert main(["sfn", "compile", "--output", str(out)]) == 0
    assert out.read_text() == GOLDEN.read_text()
