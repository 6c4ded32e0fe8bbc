"""The execution input's JSON Schema (draft 2020-12), generated from the flags.

An execution can be started by anything (EventBridge, API Gateway, the console, the CLI);
this is the document it takes. `settings` holds one property per Settings field
(abfsm/context.py): its JSON type from the field's type, its default from the field's
default, and its meaning, choices and checks from the `abfsm sfn start` flag that sets it
(argparse help, choices, and the `json_schema` keywords abfsm/cli.py gives the flag's type).
A flag sets the setting named by its dest, or dest + "s" for a repeatable one (--elb-name ->
elb_names). `environment` and `lock_bucket_name` are required; the machine fills the rest
(abfsm/sfn/compiler.py input_states) and refuses what it cannot run.

The `sfn start` parser is handed in (the CLI builds it): this layer does not import the CLI.
"""

from __future__ import annotations

import argparse
import json
import re
import types
import typing
from dataclasses import fields
from typing import Any

from abfsm.context import Settings
from abfsm.sfn.compiler import LIMITS_FROM, REQUIRED, refused_settings, wait_limits

DIALECT = "https://json-schema.org/draft/2020-12/schema"
NOT_SETTINGS = ("help", "state_machine_arn", "wait", "resume", "from_state")  # `sfn start`'s own flags
_TYPES: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


# Settings of the process that follows an execution, not of the execution.
FOLLOWER_ONLY = frozenset({"notify", "notify_on", "notify_create", "pause_at_approval",
                           "log_format", "verbose"})


def setting_of(action: argparse.Action) -> str:
    """The setting a flag sets: its dest, or dest + "s" when that is the Settings field."""
    known = {f.name for f in fields(Settings)}
    if action.dest not in known and action.dest + "s" in known:
        return action.dest + "s"
    return action.dest


def flag_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags of `parser` that are settings (every one but NOT_SETTINGS)."""
    return [a for a in parser._actions if a.option_strings and a.dest not in NOT_SETTINGS]


def schema(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The execution input's schema, from `parser` (the `sfn start` sub-parser) and Settings."""
    by_setting = {setting_of(a): a for a in flag_actions(parser)}
    hints = typing.get_type_hints(Settings)
    refused = dict(refused_settings())
    defaults = Settings("-").to_dict()
    properties: dict[str, Any] = {}
    for f in fields(Settings):
        action = by_setting.get(f.name)
        prop = _json_type(hints[f.name], required=f.name in REQUIRED)
        checks = dict(getattr(action.type, "json_schema", {})) if action is not None else {}
        if action is not None and action.choices is not None:
            checks["enum"] = list(action.choices)
        target = prop["items"] if prop.get("type") == "array" else prop
        target.update(checks)
        default = None if f.name in REQUIRED else defaults[f.name]
        meaning = _meaning(action, required=f.name in REQUIRED)
        if f.name in LIMITS_FROM:
            meaning += " An execution's waits follow `limits`."
        if f.name in FOLLOWER_ONLY:
            meaning += (" Only the process that follows the execution (`sfn start --wait`, "
                        "`sfn watch`) acts on it; the execution itself ignores it.")
        if f.name in refused:
            meaning += f" Refused by the execution unless `{json.dumps(default)}`: {refused[f.name]}."
        prop = {"description": meaning, **prop}
        if f.name not in REQUIRED:
            prop["default"] = default
        properties[f.name] = prop
    limits = wait_limits(Settings("-"))
    return {
        "$schema": DIALECT,
        "title": "abfsm Step Functions execution input",
        "description": "The input of an execution of the state machine `abfsm sfn deploy` "
                       "creates. Only settings.environment and settings.lock_bucket_name are "
                       "required; the machine fills the rest with these defaults.",
        "type": "object",
        "required": ["settings"],
        "properties": {
            "run_id": {"description": "The run's id: the record's run_id and its archive "
                                      "ENV/runs/RUN_ID.json (default: the execution's name).",
                       "type": "string", "minLength": 1},
            "started_at": {"description": "When the run started, UTC to the second (default: "
                                          "the execution's start time).",
                           "type": "string",
                           "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"},
            "settings": {"description": "The deploy flags, one property per flag.",
                         "type": "object", "required": list(REQUIRED),
                         "additionalProperties": False, "properties": properties},
            "limits": {"description": "The waits: seconds between polls and polls before a wait "
                                      "fails. Step Functions cannot divide, so a caller that "
                                      "changes update_timeout or health_check_timeout gives "
                                      "limits too (interval = update_timeout rounded up, polls "
                                      "= health_check_timeout / interval + 1), or uses `abfsm "
                                      "sfn start`, which computes them (default: those of the "
                                      "default timeouts). `bake` (optional): the bake's "
                                      "seconds, bake_time rounded up; without it the machine "
                                      "rounds bake_time to the nearest second.",
                       "type": "object", "required": ["interval", "polls"],
                       "properties": {"interval": {"type": "integer", "minimum": 1},
                                      "polls": {"type": "integer", "minimum": 1},
                                      "seconds": {
                                          "description": "Each timeout a state may name "
                                                         "(e.g. health_check_timeout), in "
                                                         "whole seconds: an approval state "
                                                         "waits this long for a decision.",
                                          "type": "object",
                                          "additionalProperties": {"type": "integer",
                                                                   "minimum": 1}},
                                      "bake": {"type": "integer", "minimum": 0}},
                       "default": limits},
        },
    }


def _json_type(hint: Any, *, required: bool = False) -> dict[str, Any]:
    """The JSON Schema type of a Settings field's type (X | None: X or null)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        [only] = inner
        prop = _json_type(only)
        if not required:
            prop["type"] = [prop["type"], "null"]
        return prop
    if typing.get_origin(hint) is list:
        [item] = typing.get_args(hint)
        return {"type": "array", "items": _json_type(item)}
    return {"type": _TYPES[hint]}


def _meaning(action: argparse.Action | None, *, required: bool) -> str:
    if action is None or not action.help:
        return "(no flag)"
    text = action.help
    if required:  # the CLI's fallback does not apply to an execution
        text = re.sub(r"\s*\(default:[^)]*\)", "", text)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def markdown_table(parser: argparse.ArgumentParser) -> str:
    """The README's table of the input's properties: property, type, default, flag, meaning."""
    doc = schema(parser)
    flags = {setting_of(a): a.option_strings[-1] for a in flag_actions(parser)}
    rows = ["| property | type | default | flag | meaning |", "|---|---|---|---|---|"]
    top = doc["properties"]
    settings = top["settings"]
    for name, default in (("run_id", "*the execution's name*"),
                          ("started_at", "*the execution's start time*")):
        rows.append(_row(name, top[name], default, "-"))
    for name, prop in settings["properties"].items():
        default = "*required*" if name in settings["required"] else prop["default"]
        rows.append(_row(f"settings.{name}", prop, default, f"`{flags[name]}`"
                         if name in flags else "-"))
    rows.append(_row("limits", top["limits"], top["limits"]["default"],
                     "`--update-timeout`, `--health-check-timeout`"))
    return "\n".join(rows) + "\n"


def _row(name: str, prop: dict[str, Any], default: Any, flag: str) -> str:
    shown = default if isinstance(default, str) and default.startswith("*") else (
        f"`{json.dumps(default)}`")
    meaning = prop["description"].replace("|", "\\|")
    return f"| `{name}` | {_shown_type(prop)} | {shown} | {flag} | {meaning} |"


def _shown_type(prop: dict[str, Any]) -> str:
    kind = prop["type"]
    if kind == "array":
        return f"array of {_shown_type(prop['items'])}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if "enum" in prop:
        return " / ".join(f"`{v}`" for v in prop["enum"])
    return str(kind)
