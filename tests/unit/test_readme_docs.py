"""The README's generated sections match the code they document."""

from __future__ import annotations

import re
from pathlib import Path

from abfsm.log_schema import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert found, f"README.md has no <!-- {name}:start/end --> markers"
    return found.group(1).strip()


def test_readme_log_schema_table_is_the_schema():
    """The README's log event table is exactly abfsm.log_schema.markdown_table()."""
    assert _block("log-schema") == markdown_table().strip(), (
        "README log schema drifted: run `make graph` (python -m tests.support.readme_graph --write)")


def test_readme_actions_table_is_the_declarations():
    """The README's table of built-in actions is exactly abfsm.actions.reference.markdown_table()."""
    from abfsm.actions.reference import markdown_table as actions_table

    assert _block("actions") == actions_table().strip(), (
        "README actions table drifted: run `make graph` (python -m tests.support.readme_graph --write)")


def test_readme_sfn_input_table_is_the_generated_schema():
    """The README's execution input table is exactly abfsm.sfn.input_schema.markdown_table()."""
    from abfsm.cli import sfn_start_parser
    from abfsm.sfn.input_schema import markdown_table as input_table

    assert _block("sfn-input") == input_table(sfn_start_parser()).strip(), (
        "README sfn input table drifted: run `make graph` (python -m tests.support.readme_graph --write)")
