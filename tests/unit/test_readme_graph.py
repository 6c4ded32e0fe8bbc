"""The README's mermaid graph is the one generated from the packaged states.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from abfsm import graph
from abfsm.actions import ACTIONS
from abfsm.spec import load_spec
from tests.support import readme_graph
from tests.support.readme_graph import END, START, ReadmeGraphError

PAGE = f"# abfsm\n\nintro\n\n{START}\n{END}\n\n## after\n"


def test_readme_graph_equals_the_generated_graph() -> None:
    """README.md's block between the graph markers is exactly the generated mermaid graph."""
    try:
        readme_graph.check()
    except ReadmeGraphError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_block_is_the_mermaid_of_the_packaged_spec() -> None:
    """block() is graph.mermaid() of the packaged states.yaml, fenced as ```mermaid."""
    assert readme_graph.block() == graph.mermaid(load_spec(None, ACTIONS))
    assert readme_graph.fenced() == "```mermaid\n" + readme_graph.block() + "```\n"


def test_write_fills_the_block_and_keeps_the_rest(tmp_path: Path) -> None:
    """--write puts the fenced graph between the markers and leaves the rest of the page alone."""
    page = tmp_path / "README.md"
    page.write_text(PAGE)
    assert readme_graph.main(["--write", "--readme", str(page)]) == 0
    text = page.read_text()
    assert text == PAGE.replace(f"{START}\n", f"{START}\n{readme_graph.fenced()}")
    readme_graph.check(page)
    assert readme_graph.write(page) is False  # already up to date


def test_check_fails_when_the_block_drifts(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A README block that differs by one trigger fails the check, with a diff and the fix."""
    page = tmp_path / "README.md"
    page.write_text(PAGE)
    readme_graph.write(page)
    page.write_text(page.read_text().replace("wait_elb --> bake: healthy", "wait_elb --> bake: ok"))
    with pytest.raises(ReadmeGraphError, match="make graph") as caught:
        readme_graph.check(page)
    assert "-    wait_elb --> bake: ok" in str(caught.value)
    assert "+    wait_elb --> bake: healthy" in str(caught.value)
    assert readme_graph.main(["--readme", str(page)]) == 1
    assert "differs" in capsys.readouterr().err


def test_check_fails_clearly_without_markers(tmp_path: Path) -> None:
    """A README without the markers fails with a message naming them, not a skip."""
    page = tmp_path / "README.md"
    page.write_text("# abfsm\n")
    with pytest.raises(ReadmeGraphError, match=f"exactly one {START} and one {END}"):
        readme_graph.check(page)
    with pytest.raises(ReadmeGraphError):
        readme_graph.write(page)
    assert page.read_text() == "# abfsm\n"
