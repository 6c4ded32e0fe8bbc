"""Imports run one way: cli -> runner -> actions -> aws, with the data modules below."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "abfsm"

# Higher may import lower (or its own rank), never the other way round.
RANKS = {
    "abfsm.cli": 4, "abfsm.__main__": 4, "abfsm.demo": 4, "abfsm.graph": 4, "abfsm.admin": 4,
    "abfsm.emulator": 4,  # the embedded emulator (moto): demo and tests only, never the engine
    "abfsm.runner": 3, "abfsm.iam": 3, "abfsm.sfn": 3,  # sfn: called from cli, uses aws
    "abfsm.actions": 2, "abfsm.notify": 2,  # notify is started by cli and may use aws
    "abfsm.aws": 1,
}  # everything else (spec, context, record, lock, clock, log, log_schema, errors): 0


def _rank(module: str) -> int:
    for prefix, rank in RANKS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 0


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("abfsm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("abfsm"):
            # `from abfsm import runner` imports abfsm.runner; `from abfsm.errors import X`
            # ranks as abfsm.errors (prefix match), so adding every name is safe.
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path
    return out


def test_no_module_imports_a_higher_layer():
    """Every `import abfsm.X` goes to the same or a lower layer (lazy imports included)."""
    upward = []
    for name, path in sorted(_modules().items()):
        for imported in sorted(_imports(path)):
            if _rank(imported) > _rank(name):
                upward.append(f"{name} imports {imported}")
    assert upward == []


def test_every_state_of_the_packaged_spec_has_its_action_module():
    """A reader finds a state's behaviour from its name in states.yaml: abfsm/actions/<action>.py."""
    import yaml

    spec = yaml.safe_load((PACKAGE / "states.yaml").read_text(encoding="utf-8"))
    for name, body in spec["states"].items():
        if not body.get("final"):
            assert (PACKAGE / "actions" / f"{body['action']}.py").is_file(), name
