"""The README's table of built-in actions, generated from their declarations.

`markdown_table()` lists every action of ACTIONS with its outcomes, its parameters and the
AWS calls it can make (under any flags), so the docs cannot drift from the declarations;
`make graph` writes it into README.md and a test checks it.
"""

from __future__ import annotations

from collections.abc import Iterable

from abfsm.actions.base import Action, AwsCall, Param
from abfsm.context import Settings

# Flag sets under which the actions declare every call they can make (a union over them).
_VARIANTS = (
    Settings("ENV"),
    Settings("ENV", clean_up=True, wait_for_scale_down=True),
)


def all_calls(act: Action, params: dict[str, object] | None = None) -> list[AwsCall]:
    """Every call `act` declares under any of the flag sets, in first-seen order."""
    seen: dict[AwsCall, None] = {}
    for settings in _VARIANTS:
        for call in act.aws_calls(settings, params or {}):
            seen.setdefault(call, None)
    return list(seen)


def markdown_table(actions: Iterable[Action] | None = None) -> str:
    if actions is None:
        from abfsm.actions import ACTIONS

        actions = [ACTIONS[name] for name in sorted(ACTIONS)]
    rows = ["| action | outcomes | params | AWS calls | what it does |", "|---|---|---|---|---|"]
    for act in actions:
        outcomes = ", ".join(f"`{o}`" for o in sorted(act.outcomes))
        params = "<br>".join(_param(name, p) for name, p in act.params.items()) or "—"
        calls = "<br>".join(_call(c) for c in all_calls(act)) or "—"
        rows.append(f"| `{act.name}` | {outcomes} | {params} | {calls} | {act.doc} |")
    return "\n".join(rows) + "\n"


def _param(name: str, p: Param) -> str:
    need = "required" if p.required else f"default `{p.default!r}`"
    doc = f": {p.doc}" if p.doc else ""
    return f"`{name}` ({p.type}, {need}){doc}"


def _call(c: AwsCall) -> str:
    return f"{c.service} `{c.api}`" + (" (write)" if c.mutating else "") + f" on {c.resource}"
