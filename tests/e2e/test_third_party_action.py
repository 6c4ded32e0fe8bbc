"""A third-party action end to end: the CLI runs examples/specs/third-party-action.yaml with
examples/actions on PYTHONPATH, against moto_server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.aws_env import build_env, capacities

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples" / "specs" / "third-party-action.yaml")
ON_PATH = {"PYTHONPATH": f"{ROOT / 'examples' / 'actions'}:{ROOT}"}


def test_the_example_action_runs_between_wait_elb_and_drain(cli: Any, make: Any, tmp_path: Path) -> None:
    """deploy --spec third-party-action.yaml: exit 0, `announce` ran after wait-elb with its
    params (the marker file names the new ASG and count), then drain emptied qa-a."""
    build_env(make, "qa", active="a", active_count=2)
    result = cli("deploy", "--environment", "qa", "--instance-count", "2", "--update-timeout", "0.1",
                 "--spec", SPEC, extra_env=ON_PATH)
    assert result.returncode == 0, result.stderr
    assert ("wait-elb", "announce", "healthy") in result.transitions
    assert ("announce", "drain", "written") in result.transitions
    assert (tmp_path / "deployed.txt").read_text() == (
        "qa-b now serves 2 instance(s); qa-a is next to drain\n")
    assert capacities(make, ["qa-a"])["qa-a"]["desired"] == 0


def test_an_action_that_cannot_be_imported_is_a_spec_error(cli: Any, server: Any) -> None:
    """Without examples/actions on the path, the spec is refused: exit 2, one line naming the
    state and the module, and no AWS call."""
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--spec", SPEC)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "states.announce.action: action 'abfsm_example_checks:write_marker': cannot import "
        "'abfsm_example_checks' (ModuleNotFoundError: No module named 'abfsm_example_checks')")
    assert server.calls() == []


def test_graph_draws_the_third_party_spec(cli: Any) -> None:
    """`abfsm graph --spec third-party-action.yaml` draws the announce state."""
    result = cli("graph", "--spec", SPEC, extra_env=ON_PATH)
    assert result.returncode == 0, result.stderr
    assert "announce" in result.stdout
