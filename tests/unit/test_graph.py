"""`abfsm graph`: mermaid and dot drawn from the spec (every state, every transition), png/svg
through the optional extra, and a run's state and path marked with --environment."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from abfsm import cli, graph, runner
from abfsm.actions import ACTIONS
from abfsm.actions.base import Run
from abfsm.aws import Services
from abfsm.context import Plan, Settings
from abfsm.errors import EXIT_USAGE, WaitTimeout
from abfsm.lock import LocalStore, Lock
from abfsm.record import RunRecord, new_record
from abfsm.spec import Spec, load_spec, machine_config
from tests.fakes import FakeClock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "specs" / "no-elb-wait.yaml"
SPECS = [pytest.param(None, id="packaged"), pytest.param(EXAMPLE, id=EXAMPLE.name)]
ENV = "qa"
TIMEOUT_MESSAGE = "wait-elb: 3/4 InService in qa-public after 600 s; i-0abc OutOfService"


def no_client(service: str) -> Any:
    raise AssertionError(f"the graph or a fake-action run built an AWS client ({service})")


def moves_of(spec: Spec) -> set[tuple[str, str, str]]:
    return {(t.source, t.trigger, t.dest) for t in spec.transitions}


def machine_moves(spec: Spec) -> set[tuple[str, str, str]]:
    """Every (source, trigger, dest) the transitions.Machine the runner builds can take."""
    from transitions import Machine

    machine = Machine(**machine_config(spec))
    return {(src, name, tr.dest) for name, event in machine.events.items()
            for src, trs in event.transitions.items() for tr in trs}


def parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str, str]], dict[str, str]]:
    """(id -> state label, moves as (src, trigger, dst) by state name, id -> class)."""
    labels = dict((m[2], m[1]) for m in re.finditer(r'^ {4}state "([^"]+)" as (\S+)$', text, re.M))
    names = {i: label.split(" (exit ")[0] for i, label in labels.items()}
    moves = set()
    for m in re.finditer(r"^ {4}(\S+) --> (\S+): (.+)$", text, re.M):
        for label in m[3].split(" | "):
            moves.add((names[m[1]], label.split(" (")[0], names[m[2]]))
    classes = dict((m[1], m[2]) for m in re.finditer(r"^ {4}class (\S+) (\S+)$", text, re.M))
    return labels, moves, classes


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    """(node -> its attribute text, [(src, trigger, dst, edge attribute text)])."""
    nodes = dict(re.findall(r'^ {4}"([^"]+)" \[(.*)\];$', text, re.M))
    edges = [(m[1], re.search(r'label="([^" ]+)', m[3])[1], m[2], m[3])  # type: ignore[index]
             for m in re.finditer(r'^ {4}"([^"]+)" -> "([^"]+)" \[(.*)\];$', text, re.M)]
    return nodes, edges


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["graph", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- mermaid


@pytest.mark.parametrize("spec_path", SPECS)
def test_mermaid_has_every_state_and_transition(spec_path: Path | None) -> None:
    """Every state of the spec is a mermaid state and every transition an arrow with its trigger."""
    spec = load_spec(spec_path, ACTIONS)
    labels, moves, _ = parse_mermaid(graph.mermaid(spec))
    assert sorted(label.split(" (exit ")[0] for label in labels.values()) == sorted(spec.states)
    assert moves == moves_of(spec)
    assert len(moves) == len(spec.transitions)


@pytest.mark.parametrize("spec_path", SPECS)
def test_graph_edges_are_the_moves_the_engine_machine_takes(spec_path: Path | None) -> None:
    """The arrows drawn are exactly those a transitions.Machine from machine_config() takes."""
    spec = load_spec(spec_path, ACTIONS)
    _, moves, _ = parse_mermaid(graph.mermaid(spec))
    _, edges = parse_dot(graph.dot(spec))
    assert moves == machine_moves(spec)
    assert {(s, t, d) for s, t, d, _ in edges} == machine_moves(spec)


def test_mermaid_is_a_titled_state_diagram_starting_at_the_initial_state() -> None:
    """The mermaid text is titled abfsm, is a stateDiagram-v2 and enters the initial state."""
    text = graph.mermaid(load_spec(None, ACTIONS))
    assert text.splitlines()[:4] == ["---", "title: abfsm", "---", "stateDiagram-v2"]
    assert "    [*] --> locked" in text.splitlines()
    assert "State Machine" not in text
    assert text.endswith("\n")


def test_mermaid_ids_are_safe_for_mermaid() -> None:
    """State ids carry no dashes or mermaid keywords (`scale`); labels keep the real names."""
    spec = load_spec(None, ACTIONS)
    labels, _, _ = parse_mermaid(graph.mermaid(spec))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) for i in labels)
    assert labels["wait_instances"] == "wait-instances"
    assert labels["scale_"] == "scale"
    assert "scale" not in labels


def test_mermaid_marks_final_states_by_exit_code() -> None:
    """Final states show their exit code and get a class by it; working states get none."""
    spec = load_spec(None, ACTIONS)
    labels, _, classes = parse_mermaid(graph.mermaid(spec))
    assert labels["refused"] == "refused (exit 3)"
    assert classes == {"done": "ok", "planned": "ok", "refused": "other",
                       "rolled_back": "error", "failed": "error"}


@pytest.mark.parametrize("spec_path", SPECS)
def test_output_is_deterministic(spec_path: Path | None) -> None:
    """Two renderings of one spec are identical, byte for byte, in both text formats."""
    spec = load_spec(spec_path, ACTIONS)
    again = load_spec(spec_path, ACTIONS)
    assert graph.mermaid(spec) == graph.mermaid(again)
    assert graph.dot(spec) == graph.dot(again)


def test_cli_graph_prints_the_mermaid_of_the_spec(capsys: pytest.CaptureFixture[str]) -> None:
    """`abfsm graph --spec EXAMPLE` prints exactly graph.mermaid() of that spec and exits 0."""
    code, out, err = run_cli(capsys, "--spec", str(EXAMPLE))
    assert code == 0 and err == ""
    assert out == graph.mermaid(load_spec(EXAMPLE, ACTIONS))
    assert "wait_elb" not in out and "instances_ready" in out


def test_cli_graph_refuses_a_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`abfsm graph --spec BAD` exits 2 with one line naming the file and key; nothing drawn."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("action: drain,", "action: drainn,"))
    code, out, err = run_cli(capsys, "--spec", str(bad))
    assert code == EXIT_USAGE and out == ""
    assert err.splitlines() == [f"abfsm graph: {bad}: states.drain.action: unknown action "
                                f"'drainn' (known: {', '.join(sorted(ACTIONS))}; or package.module:attribute)"]


# --------------------------------------------------------------------------- dot, png, svg


@pytest.mark.parametrize("spec_path", SPECS)
def test_dot_has_every_state_and_transition(spec_path: Path | None) -> None:
    """Every state is a dot node (finals double-bordered) and every transition an edge."""
    spec = load_spec(spec_path, ACTIONS)
    nodes, edges = parse_dot(graph.dot(spec))
    assert set(nodes) == set(spec.states)
    assert {n for n, attrs in nodes.items() if 'peripheries="2"' in attrs} == {
        n for n, st in spec.states.items() if st.final}
    assert sorted((s, t, d) for s, t, d, _ in edges) == sorted(moves_of(spec))
    assert f'__start__ -> "{spec.initial}";' in graph.dot(spec)


def test_dot_draws_error_triggers_dashed() -> None:
    """fail/refuse/rollback edges are dashed; action outcomes are solid."""
    _, edges = parse_dot(graph.dot(load_spec(None, ACTIONS)))
    dashed = {t for _, t, _, attrs in edges if 'style="dashed"' in attrs}
    solid = {t for _, t, _, attrs in edges if 'style="dashed"' not in attrs}
    assert dashed == {"fail", "refuse", "rollback"}
    assert "healthy" in solid and not dashed & solid


def test_cli_dot_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--format dot --output FILE` writes the dot text to FILE and nothing to stdout."""
    out_file = tmp_path / "abfsm.dot"
    code, out, _ = run_cli(capsys, "--format", "dot", "--output", str(out_file))
    assert code == 0 and out == ""
    assert out_file.read_text() == graph.dot(load_spec(None, ACTIONS))


@pytest.mark.parametrize("spec_path", SPECS)
def test_png_renders_with_the_graph_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          spec_path: Path | None) -> None:
    """With pygraphviz installed, `--format png` writes a PNG image."""
    pytest.importorskip("pygraphviz", reason="the abfsm[graph] extra is not installed")
    out_file = tmp_path / "abfsm.png"
    spec_args = ["--spec", str(spec_path)] if spec_path else []
    code, _, _ = run_cli(capsys, *spec_args, "--format", "png", "--output", str(out_file))
    assert code == 0
    assert out_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_svg_renders_every_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With pygraphviz installed, `--format svg` writes an SVG naming every state."""
    pytest.importorskip("pygraphviz", reason="the abfsm[graph] extra is not installed")
    out_file = tmp_path / "abfsm.svg"
    code, _, _ = run_cli(capsys, "--format", "svg", "--output", str(out_file))
    svg = out_file.read_text()
    assert code == 0 and "<svg" in svg
    names = {html.unescape(t) for t in re.findall(r">([^<>]+)</text>", svg)}
    assert set(load_spec(None, ACTIONS).states) <= names


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_image_without_the_extra_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    """Without pygraphviz, png/svg exit 2 with one line naming `abfsm[graph]`; no file written."""
    monkeypatch.setitem(sys.modules, "pygraphviz", None)  # `import pygraphviz` raises ImportError
    out_file = tmp_path / f"abfsm.{fmt}"
    code, out, err = run_cli(capsys, "--format", fmt, "--output", str(out_file))
    assert code == EXIT_USAGE and out == ""
    assert err.splitlines() == [f"abfsm graph: --format {fmt} needs Graphviz: "
                                "pip install 'abfsm[graph]'"]
    assert not out_file.exists()


def test_text_formats_need_no_extra(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Without pygraphviz, mermaid and dot still work."""
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    assert run_cli(capsys)[0] == 0
    code, out, _ = run_cli(capsys, "--format", "dot")
    assert code == 0 and out.startswith("digraph abfsm {")


# --------------------------------------------------------------------------- --environment


def drive(state_dir: Path, clock: FakeClock, wait_elb: Callable[[Run], str]) -> RunRecord:
    """A fake-action deployment of ENV over a local lock in state_dir; its run record."""
    spec = load_spec(None, ACTIONS)
    settings = Settings(environment=ENV, state_dir=str(state_dir))
    lock = Lock(LocalStore(state_dir, ENV), clock)
    record = new_record(ENV, spec.version, spec.initial, settings.to_dict(), clock)
    run = Run(settings=settings, plan=Plan(), aws=Services(no_client), clock=clock, lock=lock,
              record=record, spec=spec)

    def acquire_lock(run: Run) -> str:
        run.lock.acquire(run.record)
        return "acquired"

    def returns(trigger: str) -> Callable[[Run], str]:
        return lambda run: trigger

    actions = {"acquire_lock": acquire_lock, "inspect": returns("deploy"),
               "scale_step": returns("scaled"), "wait_instances": returns("instances_ready"),
               "wait_elb": wait_elb, "bake": returns("baked"), "drain": returns("drained")}
    runner.drive(run, spec.initial, actions=actions)
    return record


def time_out(run: Run) -> str:
    raise WaitTimeout(TIMEOUT_MESSAGE)


@pytest.fixture
def failed_run(tmp_path: Path, clock: FakeClock) -> tuple[Path, RunRecord]:
    """A run of ENV that failed in wait-elb and keeps its lock in a local state dir."""
    state_dir = tmp_path / "state"
    record = drive(state_dir, clock, time_out)
    assert record.status == "failed" and record.failed_state == "wait-elb"
    assert (state_dir / f"{ENV}.lock").exists()
    return state_dir, record


FAILED_PATH = [("locked", "acquired", "inspect"), ("inspect", "deploy", "scale"),
               ("scale", "scaled", "wait-instances"), ("wait-instances", "instances_ready", "wait-elb"),
               ("wait-elb", "fail", "failed")]


def test_marks_of_a_failed_run_name_its_path_and_failed_state(
        failed_run: tuple[Path, RunRecord]) -> None:
    """marks_from_record: the state the run is in, the state that failed, the moves in order."""
    _, record = failed_run
    marks = graph.marks_from_record(load_spec(None, ACTIONS), record)
    assert marks.current == "failed"
    assert marks.failed == "wait-elb"
    assert list(marks.steps) == FAILED_PATH
    assert marks.caption == f"{ENV} run {record.run_id}, failed in wait-elb"


def test_mermaid_with_environment_marks_the_failed_state_and_path(
        failed_run: tuple[Path, RunRecord], capsys: pytest.CaptureFixture[str]) -> None:
    """`graph --environment qa`: wait-elb is `stopped`, failed `current`, the path numbered."""
    state_dir, record = failed_run
    code, out, err = run_cli(capsys, "--environment", ENV, "--state-dir", str(state_dir))
    assert code == 0 and err == ""
    _, moves, classes = parse_mermaid(out)
    assert classes["wait_elb"] == "stopped"
    assert classes["failed"] == "current"
    assert {classes[i] for i in ("locked", "inspect", "scale_", "wait_instances")} == {"visited"}
    assert "drain" not in classes and classes["done"] == "ok"
    lines = out.splitlines()
    for n, (src, trigger, dst) in enumerate(FAILED_PATH, 1):
        src_id, dst_id = (s.replace("-", "_").replace("scale", "scale_") for s in (src, dst))
        assert any(line.startswith(f"    {src_id} --> {dst_id}: ") and f"{trigger} ({n})" in line
                   for line in lines), (n, trigger)
    assert "    wait_elb --> bake: healthy" in lines  # not taken: no step number
    assert "classDef stopped " in out and "classDef current " in out
    assert f"title: \"abfsm: {ENV} run {record.run_id}, failed in wait-elb\"" in lines
    assert moves == moves_of(load_spec(None, ACTIONS))  # marks change no edge


def test_dot_with_environment_colours_the_failed_state_and_path(
        failed_run: tuple[Path, RunRecord], capsys: pytest.CaptureFixture[str]) -> None:
    """In dot, the failed state and current state are bold and coloured, path edges blue."""
    state_dir, _ = failed_run
    code, out, _ = run_cli(capsys, "--format", "dot", "--environment", ENV,
                           "--state-dir", str(state_dir))
    assert code == 0
    nodes, edges = parse_dot(out)
    stopped_fill, stopped_line = graph._STOPPED
    assert f'fillcolor="{stopped_fill}", color="{stopped_line}", penwidth="3"' in nodes["wait-elb"]
    assert 'penwidth="3"' in nodes["failed"] and 'penwidth' not in nodes["drain"]
    on_path = [(s, t, d) for s, t, d, attrs in edges if f'color="{graph._VISITED[1]}"' in attrs]
    assert sorted(on_path) == sorted(FAILED_PATH)


def test_environment_after_a_finished_run_marks_the_last_run(
        tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    """With no lock, the last archived run is marked: it is in done, nothing failed."""
    state_dir = tmp_path / "state"
    record = drive(state_dir, clock, lambda run: "healthy")
    assert not (state_dir / f"{ENV}.lock").exists()
    code, out, _ = run_cli(capsys, "--environment", ENV, "--state-dir", str(state_dir))
    _, _, classes = parse_mermaid(out)
    assert code == 0
    assert classes["done"] == "current" and classes["drain"] == "visited"
    assert "stopped" not in classes.values()
    assert f"{ENV} run {record.run_id}, done\"" in out


def test_environment_without_runs_draws_unmarked_with_a_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No lock and no archived run: the plain graph, exit 0, one stderr line saying so."""
    code, out, err = run_cli(capsys, "--environment", ENV, "--state-dir", str(tmp_path))
    assert code == 0
    assert out == graph.mermaid(load_spec(None, ACTIONS))
    assert err.splitlines() == [f"abfsm graph: {ENV} has no run on record "
                                f"({tmp_path / (ENV + '.lock')}); nothing marked"]


def test_marks_skip_moves_the_spec_does_not_have(failed_run: tuple[Path, RunRecord]) -> None:
    """A record from another machine marks only what this spec has (no invented states)."""
    _, record = failed_run
    marks = graph.marks_from_record(load_spec(EXAMPLE, ACTIONS), record)
    assert marks.failed is None  # no wait-elb in the example machine
    assert ("wait-instances", "instances_ready", "wait-elb") not in marks.steps
    assert marks.steps[:3] == tuple(FAILED_PATH[:3])


def test_graph_does_not_import_boto3(failed_run: tuple[Path, RunRecord]) -> None:
    """`python -X importtime -m abfsm graph --environment qa` (local dir) never imports boto3."""
    state_dir, _ = failed_run
    env = dict(os.environ, PYTHONPATH=str(ROOT), AWS_ENDPOINT_URL="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "abfsm", "graph",
                           "--environment", ENV, "--state-dir", str(state_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "class wait_elb stopped" in proc.stdout
    assert "abfsm.graph" in proc.stderr  # importtime really reported the imports
    assert "boto3" not in proc.stderr and "botocore" not in proc.stderr


# --------------------------------------------------------------------------- output streams and files


def test_graph_with_a_lock_bucket_prints_only_the_graph(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """`graph --environment qa --lock-bucket-name B`: stdout is exactly the mermaid, no log line."""
    aws("s3").create_bucket(Bucket="qa-locks")
    code, out, err = run_cli(capsys, "--environment", ENV, "--lock-bucket-name", "qa-locks")
    assert code == 0
    assert out == graph.mermaid(load_spec(None, ACTIONS))
    assert err.splitlines() == [f"abfsm graph: {ENV} has no run on record "
                                "(s3://qa-locks/qa.lock); nothing marked"]


class _Tty:
    """A terminal as standard output (only isatty matters: nothing may be written to it)."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise AssertionError(f"wrote to the terminal: {text!r}")

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_an_image_onto_a_terminal_is_refused(fmt: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--format png|svg with no --output and stdout a terminal: exit 2, one line, nothing drawn."""
    monkeypatch.setattr(sys, "stdout", _Tty())
    code = cli.main(["graph", "--format", fmt])
    assert code == EXIT_USAGE
    assert capsys.readouterr().err == (f"abfsm graph: --format {fmt} writes an image; "
                                       "give --output FILE or redirect stdout\n")


@pytest.mark.parametrize(("where", "problem"), [
    ("missing/graph.mmd", "the directory {tmp}/missing does not exist"),
    (".", "is a directory; name a file"),
    ("file.txt/graph.mmd", "the directory {tmp}/file.txt is not a directory"),
])
def test_output_into_a_bad_place_is_one_line_exit_2(where: str, problem: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--output into a missing directory, onto a directory, under a file: exit 2, one line,
    before the environment's run is read (no AWS call)."""
    (tmp_path / "file.txt").write_text("")
    monkeypatch.setattr(graph, "environment_marks", lambda *_: pytest.fail("read the run"))
    output = str(tmp_path / where) if where != "." else str(tmp_path)
    code, out, err = run_cli(capsys, "--output", output, "--environment", ENV,
                             "--lock-bucket-name", "qa-locks")
    assert code == EXIT_USAGE and out == ""
    assert err == f"abfsm graph: --output {output}: {problem.format(tmp=tmp_path)}\n"


def test_output_that_cannot_be_written_is_one_line_exit_2(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A write that fails anyway (e.g. permission denied) is one line naming --output, exit 2."""
    def denied(self: Path, data: bytes) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", denied)
    output = str(tmp_path / "graph.mmd")
    code, _, err = run_cli(capsys, "--output", output)
    assert code == EXIT_USAGE
    assert err == f"abfsm graph: --output {output}: cannot write it (Permission denied)\n"


def test_graph_into_a_closed_pipe_exits_quietly() -> None:
    """`abfsm graph` whose reader is gone: exit 0, nothing on stderr (no BrokenPipeError)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "abfsm", "graph"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_plain_graph_imports_neither_boto3_nor_structlog() -> None:
    """`abfsm graph` without --environment logs nothing, so it imports no structlog either."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "abfsm", "graph"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("---")
    assert "abfsm.graph" in proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
    assert not imported & {"boto3", "botocore", "structlog"}
