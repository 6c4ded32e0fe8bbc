"""The gate docs match the code: the README draws each gate example spec as `abfsm graph`
prints it, lists exit code 4, and names every hook variable the hook sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from abfsm.actions.hook import hook_env
from abfsm.cli import build_parser
from tests.fakes import FakeClock
from tests.support import readme_graph
from tests.support.gates import gate_run

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_draws_each_gate_spec_as_abfsm_graph_prints_it() -> None:
    """The gate-graphs block is generated (`make graph`) from the three example specs."""
    assert readme_graph.current_gate_graphs() == readme_graph.gate_graphs()
    for spec in readme_graph.GATE_SPECS:
        out = subprocess.run([sys.executable, "-m", "abfsm", "graph", "--spec", spec], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        assert f"`abfsm graph --spec {spec}`:\n\n```mermaid\n{out}```\n" in README


def test_exit_code_4_is_documented_wherever_exit_codes_are_listed() -> None:
    """README's exit-code table, the CI example and `abfsm --help` all list 4."""
    assert "| 4 | paused at a checkpoint" in README
    assert "4 paused at an approval" in (ROOT / "examples/ci-deploy.sh").read_text()
    assert "4 paused at a checkpoint" in (build_parser().epilog or "")


def test_every_hook_variable_is_documented(tmp_path: Path, clock: FakeClock,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ABFSM_* variable hook_env sets is named in the README."""
    for key in [k for k in os.environ if k.startswith("ABFSM_")]:
        monkeypatch.delenv(key)
    run = gate_run(tmp_path, clock, "bake")
    names = [k for k in hook_env(run) if k.startswith("ABFSM_")]
    assert len(names) == 9
    assert all(f"`{name}`" in README for name in names)
