"""The Step Functions pipeline examples (examples/stepfunctions/) are what the README shows
and what abfsm accepts: each is well-formed, and each abfsm command in them passes the same
checks `abfsm sfn start` makes before its first AWS call."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from abfsm.cli import build_parser, settings_from
from abfsm.sfn import engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "stepfunctions"
README = Path(__file__).resolve().parents[2] / "README.md"
# The pipelines' own variables, as a run would fill them.
_VARIABLES = re.compile(r'"?\$\{\{ inputs\.([\w-]+) \}\}"?|\$\{bamboo\.(\w+)\}')
_VALUES = {"environment": "qa", "instance-count": "4", "instance_count": "4"}


def _scripts(node: Any, key: str = "") -> list[str]:
    """Every shell script in a pipeline document (GitHub's `run`, Bamboo's `scripts`)."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _scripts(v, str(k))]
    if isinstance(node, list):
        return [s for v in node for s in _scripts(v, key)]
    return [node] if isinstance(node, str) and key in ("run", "scripts") else []


def _commands(script: str) -> list[list[str]]:
    text = _VARIABLES.sub(lambda m: _VALUES[m.group(1) or m.group(2)], script)
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["abfsm"]:
            out.append(words[1:words.index(">")] if ">" in words else words[1:])
    return out


def _pipeline_commands(name: str) -> list[list[str]]:
    doc = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return [c for s in _scripts(doc) for c in _commands(s)]


@pytest.mark.parametrize("name", ["github-actions.yml", "bamboo-specs.yml"])
def test_each_pipeline_starts_and_follows_an_execution_abfsm_accepts(name):
    """The pipeline runs `abfsm sfn start ... --wait` with JSON logs, and its flags pass
    `sfn start`'s own checks (no AWS call)."""
    [argv] = _pipeline_commands(name)
    args = build_parser().parse_args(argv)
    assert (args.command, args.sfn_command, args.wait, args.log_format) == \
        ("sfn", "start", True, "json")
    settings = settings_from(args)
    engine.check_start(settings, args.state_machine_arn)
    assert (settings.environment, settings.instance_count) == ("qa", 4)


def test_the_trust_policy_lets_step_functions_assume_the_role():
    """The execution role's trust policy names states.amazonaws.com and sts:AssumeRole only."""
    doc = json.loads((EXAMPLES / "trust-policy.json").read_text(encoding="utf-8"))
    [statement] = doc["Statement"]
    assert doc["Version"] == "2012-10-17"
    assert statement["Principal"] == {"Service": "states.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole" and statement["Effect"] == "Allow"


@pytest.mark.parametrize("name", ["github-actions.yml", "bamboo-specs.yml", "trust-policy.json"])
def test_the_readme_points_to_each_example(name):
    """README's Step Functions section links every example file."""
    assert f"examples/stepfunctions/{name}" in README.read_text(encoding="utf-8")
