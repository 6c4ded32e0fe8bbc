"""The execution input: its JSON Schema generated from the flags (`abfsm sfn input-schema`)
and the machine's entry (`abfsm.input`) that fills and checks it (no AWS).

The documents are validated with jsonschema's Draft 2020-12 validator, which the test
extra already installs (moto[server] needs it); nothing is added for it.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from abfsm.actions import ACTIONS
from abfsm.aws.stepfunctions import Execution
from abfsm.cli import main, settings_from, sfn_start_parser
from abfsm.context import Settings
from abfsm.errors import UsageError
from abfsm.sfn import engine, input_schema
from abfsm.sfn.compiler import ERROR_INPUT, INPUT, compile_spec, input_states
from abfsm.spec import load_spec

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:abfsm"


def _schema() -> dict[str, Any]:
    return input_schema.schema(sfn_start_parser())


def _start_document(*flags: str) -> dict[str, Any]:
    """The input `abfsm sfn start` sends for these flags."""
    args = sfn_start_parser().parse_args(["--state-machine-arn", ARN, "--environment", "qa",
                                          "--lock-bucket-name", "my-locks", *flags])
    return engine.execution_input(settings_from(args), "20260101T000000Z-abcdef",
                                  "2026-01-01T00:00:00Z")


def _errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema())
    return sorted(e.json_path for e in validator.iter_errors(doc))


def test_every_flag_of_sfn_start_has_its_settings_property():
    """Each `sfn start` flag but its own (--state-machine-arn, --wait) names a property of
    settings (a new flag without a Settings field fails here)."""
    properties = _schema()["properties"]["settings"]["properties"]
    flags = input_schema.flag_actions(sfn_start_parser())
    assert len(flags) > 30
    missing = [a.option_strings[-1] for a in flags if input_schema.setting_of(a) not in properties]
    assert missing == []
    assert {"--state-machine-arn", "--wait"}.isdisjoint(
        {o for a in flags for o in a.option_strings})


def test_the_schema_is_a_draft_2020_12_schema():
    """The document is a valid draft 2020-12 schema; environment and lock_bucket_name required."""
    doc = _schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["properties"]["settings"]["required"] == ["environment", "lock_bucket_name"]


@pytest.mark.parametrize("flags", [
    [], ["--zero"], ["--instance-count", "4", "--instance-count-step", "2", "--rollback-on-failure",
                     "--update-timeout", "5", "--health-check-timeout", "60"],
    ["--instance-count-match", "--no-elb-check", "--log-format", "json", "--verbose"],
    ["--elb-name", "qa-public", "--target-group-arn",
     "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/qa/0123456789abcdef",
     "--alarm", "qa-5xx", "--bake-time", "30", "--launch-template-version", "$Latest",
     "--region", "eu-west-1"],
], ids=["defaults", "zero", "stepped", "match", "lists-and-strings"])
def test_documents_sfn_start_builds_validate(flags):
    """What `sfn start` sends for these flags is valid against the schema."""
    assert _errors(_start_document(*flags)) == []


@pytest.mark.parametrize("doc, where", [
    ({"settings": {"lock_bucket_name": "my-locks"}}, "$.settings"),
    ({"settings": {"environment": "qa"}}, "$.settings"),
    ({"settings": {"environment": "qa/x", "lock_bucket_name": "my-locks"}}, "$.settings.environment"),
    ({"settings": {"environment": "qa", "lock_bucket_name": "My_Locks"}},
     "$.settings.lock_bucket_name"),
    ({"settings": {"environment": "qa", "lock_bucket_name": "my-locks", "instance_count": 0}},
     "$.settings.instance_count"),
    ({"settings": {"environment": "qa", "lock_bucket_name": "my-locks", "log_format": "xml"}},
     "$.settings.log_format"),
    ({"settings": {"environment": "qa", "lock_bucket_name": "my-locks", "instance_cout": 2}},
     "$.settings"),
    ({"settings": {"environment": "qa", "lock_bucket_name": "my-locks"}, "limits": {"interval": 1}},
     "$.limits"),
], ids=["no-environment", "no-bucket", "bad-environment", "bad-bucket", "count-0",
        "not-a-choice", "typo", "partial-limits"])
def test_the_schema_refuses_what_the_flags_refuse(doc, where):
    """Missing required settings, a value the flag's type or choices refuse, an unknown
    setting, partial limits: each is one error at its place."""
    assert _errors(doc) == [where]


def test_types_defaults_and_meanings_come_from_settings_and_the_flags():
    """Types from Settings' annotations, defaults from its defaults, meaning from --help."""
    props = _schema()["properties"]["settings"]["properties"]
    assert props["instance_count"]["type"] == "integer" and props["instance_count"]["default"] == 8
    assert props["instance_count_step"]["type"] == ["integer", "null"]
    assert props["elb_names"] == {**props["elb_names"], "type": "array", "default": []}
    assert props["log_format"]["enum"] == ["auto", "console", "json"]
    assert props["zero"]["description"] == "Zero the currently active ASG."
    assert "default" not in props["environment"] and "default" not in props["lock_bucket_name"]


def test_input_schema_prints_the_schema(capsys):
    """`abfsm sfn input-schema` prints the generated document as JSON, exit 0."""
    assert main(["sfn", "input-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == _schema()


def test_the_machine_starts_at_abfsm_input():
    """The compiled machine's StartAt is abfsm.input; its chain leads through abfsm.resume?
    to the spec's initial."""
    doc = compile_spec(load_spec(None, ACTIONS))
    assert doc["StartAt"] == INPUT == "abfsm.input"
    assert doc["States"]["abfsm.input.check"]["Default"] == "abfsm.resume?"
    assert doc["States"]["abfsm.resume?"]["Default"] == "locked"


def test_the_entry_ends_at_next_or_fails_with_invalid_input():
    """input_states(next_): every way out of the chain is `next_` or a Fail abfsm.InvalidInput."""
    states = input_states("NEXT")
    outs = set()
    for st in states.values():
        outs |= {st[k] for k in ("Next", "Default") if k in st}
        outs |= {c["Next"] for c in st.get("Choices", [])}
    assert outs - set(states) == {"NEXT"}
    fails = [st for st in states.values() if st["Type"] == "Fail"]
    assert fails and {st["Error"] for st in fails} == {ERROR_INPUT}


def test_the_entry_refuses_each_setting_sfn_start_refuses():
    """dry_run and every flag of engine.UNSUPPORTED have a Fail state naming their setting."""
    states = input_states("NEXT")
    causes = " ".join(st["Cause"] for st in states.values() if st["Type"] == "Fail")
    for flag, _ in engine.UNSUPPORTED:
        assert engine.unsupported_reason(flag) in causes
    assert "settings.image_id: --image-id needs ec2:CreateLaunchTemplateVersion" in causes
    assert "settings.dry_run:" in causes


def test_the_entry_fills_what_sfn_start_sends():
    """The machine's defaults are the settings `sfn start` sends without flags (notify_on
    aside: the events of --notify sinks, which an execution refuses) and its limits."""
    defaults = input_states("NEXT")["abfsm.input.defaults"]["Parameters"]["defaults"]
    sent = _start_document()
    assert defaults["limits"] == sent["limits"]
    del sent["settings"]["notify_on"], defaults["settings"]["notify_on"]
    assert {**defaults["settings"], "environment": "qa", "lock_bucket_name": "my-locks"} == \
        sent["settings"]


def test_an_invalid_input_execution_is_exit_2():
    """FAILED abfsm.InvalidInput -> UsageError (exit 2) with the cause as message."""
    with pytest.raises(UsageError) as caught:
        engine.outcome(Execution("arn", "FAILED", ERROR_INPUT, "execution input: x"))
    assert caught.value.exit_code == 2 and str(caught.value) == "execution input: x"


def test_settings_defaults_are_valid_settings():
    """Settings' defaults (what `sfn start` records) are valid against the schema."""
    doc = {"settings": Settings("qa", lock_bucket_name="my-locks").to_dict()}
    assert _errors(doc) == []


def test_each_input_path_is_tested_for_presence_first():
    """Before any other test of a caller's field (required settings, limits), its Choice tests
    IsPresent: AWS fails a comparison on a missing path with States.Runtime (moto does not,
    so only this test sees the order)."""
    states = input_states("NEXT")
    rules = states["abfsm.input"]["Choices"] + states["abfsm.input.check"]["Choices"]
    first: dict[str, dict[str, Any]] = {}
    for rule in rules:
        inner = rule.get("Not", rule)
        if inner["Variable"].startswith(("$.settings.", "$.limits.")):
            first.setdefault(inner["Variable"], rule)
    assert {"$.settings.environment", "$.settings.lock_bucket_name", "$.limits.interval",
            "$.limits.polls"} <= set(first)
    for path in ("$.settings.environment", "$.settings.lock_bucket_name", "$.limits.interval",
                 "$.limits.polls"):
        assert first[path] == {"Not": {"Variable": path, "IsPresent": True},
                               "Next": first[path]["Next"]}


@pytest.mark.parametrize("name", sorted(input_schema.FOLLOWER_ONLY))
def test_a_follower_setting_says_the_execution_ignores_it(name):
    """--notify, --pause-at-approval, the log flags: their description says only the process
    following the execution acts on them (an EventBridge start notifies no one)."""
    prop = input_schema.schema(sfn_start_parser())["properties"]["settings"]["properties"][name]
    assert "the execution itself ignores it" in prop["description"]
