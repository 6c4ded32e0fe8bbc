"""The README's state graph: generated from the packaged states.yaml, never edited by hand.

    python -m tests.support.readme_graph          # exit 1 and say so if README.md is stale
    python -m tests.support.readme_graph --write  # rewrite the block (`make graph`)

The block lives between `<!-- graph:start -->` and `<!-- graph:end -->` as a ```mermaid
fence holding exactly what `abfsm graph` prints for the packaged spec.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

START = "<!-- graph:start -->"
END = "<!-- graph:end -->"
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


class ReadmeGraphError(Exception):
    """README.md has no usable graph block, or its block differs from the generated one."""


def block() -> str:
    """The mermaid text `abfsm graph` prints for the packaged states.yaml."""
    from abfsm.actions import ACTIONS
    from abfsm.graph import mermaid
    from abfsm.spec import load_spec

    return mermaid(load_spec(None, ACTIONS))


def fenced() -> str:
    """What belongs between the markers, markers excluded."""
    return "```mermaid\n" + block() + "```\n"


def _split(text: str, path: Path) -> tuple[str, str, str]:
    """(before and START, the current block, END and after)."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ReadmeGraphError(
            f"{path}: needs exactly one {START} and one {END} line around the graph "
            f"(found {text.count(START)} and {text.count(END)}); add them, then run "
            "`make graph` (python -m tests.support.readme_graph --write)")
    head, rest = text.split(START, 1)
    inner, tail = rest.split(END, 1)
    return head + START + "\n", inner.lstrip("\n") if inner.strip() else "", END + tail


def current(path: str | Path = README) -> str:
    """The block README.md has now, between the markers."""
    path = Path(path)
    return _split(path.read_text(encoding="utf-8"), path)[1]


def check(path: str | Path = README) -> None:
    """Raise ReadmeGraphError unless README.md's block equals the generated graph."""
    path = Path(path)
    have, want = current(path), fenced()
    if have != want:
        raise ReadmeGraphError(
            f"{path}: the mermaid graph between {START} and {END} differs from the one "
            "generated from abfsm/states.yaml; run `make graph` "
            "(python -m tests.support.readme_graph --write)\n"
            + _diff(have, want, str(path)))


def write(path: str | Path = README) -> bool:
    """Rewrite the block in place; True if the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, _, tail = _split(text, path)
    new = head + fenced() + tail
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def _rewrite_block(path: str | Path, name: str, content: str) -> bool:
    """Put `content` between the README's `<!-- NAME:start -->` and `<!-- NAME:end -->`
    lines; True if the file changed."""
    import re

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = re.sub(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
                 lambda m: m.group(1) + content + m.group(2), text, flags=re.S)
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def write_log_schema(path: str | Path = README) -> bool:
    """Rewrite the README's log event table from abfsm.log_schema; True if it changed."""
    from abfsm.log_schema import markdown_table

    return _rewrite_block(path, "log-schema", markdown_table().strip() + "\n")


def write_actions(path: str | Path = README) -> bool:
    """Rewrite the README's table of built-in actions from their declarations."""
    from abfsm.actions.reference import markdown_table

    return _rewrite_block(path, "actions", markdown_table().strip() + "\n")


# The gate example specs the README draws (section "Gates"), each as `abfsm graph --spec` prints it.
GATE_SPECS = ("examples/specs/bake-with-alarms.yaml", "examples/specs/smoke-test.yaml",
              "examples/specs/manual-approval.yaml")


def gate_graphs() -> str:
    """What belongs in the README's gate-graphs block."""
    from abfsm.actions import ACTIONS
    from abfsm.graph import mermaid
    from abfsm.spec import load_spec

    parts = []
    for spec in GATE_SPECS:
        parts.append(f"`abfsm graph --spec {spec}`:\n\n```mermaid\n"
                     + mermaid(load_spec(ROOT / spec, ACTIONS)) + "```\n")
    return "\n".join(parts)


def current_gate_graphs(path: str | Path = README) -> str:
    import re

    found = re.search(r"<!-- gate-graphs:start -->\n(.*?)<!-- gate-graphs:end -->",
                      Path(path).read_text(encoding="utf-8"), flags=re.S)
    if not found:
        raise ReadmeGraphError(f"{path}: no <!-- gate-graphs:start --> ... end block")
    return found.group(1)


def write_gate_graphs(path: str | Path = README) -> bool:
    """Rewrite the README's gate-graphs block; True if it changed."""
    return _rewrite_block(path, "gate-graphs", gate_graphs())


def write_iam(path: str | Path = README) -> bool:
    """Rewrite the README's IAM section from abfsm.iam's declarations; True if it changed."""
    from abfsm.iam import readme_block

    return _rewrite_block(path, "iam", readme_block())


def write_sfn_input(path: str | Path = README) -> bool:
    """Rewrite the README's table of the execution input's properties (`abfsm sfn
    input-schema`, generated from the flags); True if it changed."""
    from abfsm.cli import sfn_start_parser
    from abfsm.sfn.input_schema import markdown_table

    return _rewrite_block(path, "sfn-input", markdown_table(sfn_start_parser()))


def _diff(have: str, want: str, name: str) -> str:
    import difflib

    return "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                        f"{name} (graph block)", "generated"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.readme_graph",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README's block")
    parser.add_argument("--readme", default=str(README), help="default: the repo's README.md")
    args = parser.parse_args(argv)
    try:
        if args.write:
            changed = write(args.readme)
            print(f"{args.readme}: graph {'updated' if changed else 'already up to date'}")
            changed = write_log_schema(args.readme)
            print(f"{args.readme}: log schema {'updated' if changed else 'already up to date'}")
            changed = write_actions(args.readme)
            print(f"{args.readme}: actions {'updated' if changed else 'already up to date'}")
            changed = write_gate_graphs(args.readme)
            print(f"{args.readme}: gate graphs {'updated' if changed else 'already up to date'}")
            changed = write_iam(args.readme)
            print(f"{args.readme}: IAM policy {'updated' if changed else 'already up to date'}")
            changed = write_sfn_input(args.readme)
            print(f"{args.readme}: sfn input {'updated' if changed else 'already up to date'}")
        else:
            check(args.readme)
            print(f"{args.readme}: graph up to date")
    except ReadmeGraphError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
