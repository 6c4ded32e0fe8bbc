"""states.yaml validation: a corpus of broken specs, each refused with the file, the key and
the problem named; the packaged and example specs load and drive to a final state."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from abfsm import cli, runner
from abfsm.actions import ACTIONS
from abfsm.actions.base import Run
from abfsm.aws import Services
from abfsm.context import Plan, Settings
from abfsm.errors import EXIT_USAGE, SpecError
from abfsm.lock import LocalStore, Lock
from abfsm.record import new_record
from abfsm.spec import Spec, Transition, load_spec, machine_config, packaged_spec_path
from tests.fakes import FakeClock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = sorted((ROOT / "examples" / "specs").glob("*.yaml"))
EXAMPLE_ACTIONS = ROOT / "examples" / "actions"  # the third-party example's package


@pytest.fixture(autouse=True)
def _example_actions_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/specs/third-party-action.yaml names an action of examples/actions/."""
    monkeypatch.syspath_prepend(str(EXAMPLE_ACTIONS))
ABFSM_KEYS = {"action", "timeout", "final", "exit", "keeps_lock", "description"}


def packaged() -> dict[str, Any]:
    return yaml.safe_load(packaged_spec_path().read_text(encoding="utf-8"))


def transition_index(data: dict[str, Any], trigger: str, source: Any) -> int:
    return next(i for i, t in enumerate(data["transitions"])
                if t["trigger"] == trigger and t["source"] == source)


# Each edit takes the packaged spec's data and breaks one thing.
def set_key(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def del_key(*path: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def add_transition(trigger: str, source: Any, dest: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["transitions"].append({"trigger": trigger, "source": source, "dest": dest})
    return edit


def drop_transition(trigger: str, source: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        del data["transitions"][transition_index(data, trigger, source)]
    return edit


def fail_only_from(*sources: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["transitions"][transition_index(data, "fail", "*")]["source"] = list(sources)
    return edit


def limbo(data: dict[str, Any]) -> None:
    """A reachable working state whose every move leads back to itself."""
    data["states"]["limbo"] = {"action": "drain"}
    data["transitions"].append({"trigger": "refuse", "source": "drain", "dest": "limbo"})
    data["transitions"].append({"trigger": "drained", "source": "limbo", "dest": "limbo"})
    data["transitions"].append({"trigger": "fail", "source": "limbo", "dest": "limbo"})
    working = [n for n, s in data["states"].items() if not s.get("final") and n != "limbo"]
    fail_only_from(*working)(data)


def with_marker(action: str = "abfsm_example_checks:write_marker",
                **params: Any) -> Callable[[dict[str, Any]], None]:
    """An `announce` state between wait-elb and drain running a third-party action."""
    def edit(data: dict[str, Any]) -> None:
        body: dict[str, Any] = {"action": action}
        if params:
            body["params"] = params.get("raw", params)
        data["states"]["announce"] = body
        data["transitions"][transition_index(data, "healthy", "wait-elb")]["dest"] = "announce"
        data["transitions"].append({"trigger": "written", "source": "announce", "dest": "drain"})
    return edit


N = len(packaged()["transitions"])  # index of an appended transition

# (id, edit of the packaged data or raw YAML text, expected key, expected problem fragment)
BROKEN: list[tuple[str, Any, str, str]] = [
    ("unknown-action", set_key("states", "scale", "action", value="scale_stepz"),
     "states.scale.action", "unknown action 'scale_stepz'"),
    ("unknown-dest", set_key("transitions", 0, "dest", value="nowhere"),
     "transitions[0].dest", "unknown state 'nowhere'"),
    ("unknown-source", set_key("transitions", 0, "source", value="nowhere"),
     "transitions[0].source", "unknown state 'nowhere'"),
    ("unknown-source-in-list", set_key("transitions", 0, "source", value=["locked", "gone"]),
     "transitions[0].source", "unknown state 'gone'"),
    ("unknown-initial", set_key("initial", value="start"), "initial", "unknown state 'start'"),
    ("initial-is-final", set_key("initial", value="done"), "initial", "'done' is a final state"),
    ("unreachable-state", set_key("states", "orphan", value={"final": True, "exit": 0}),
     "states.orphan", "unreachable from the initial state 'locked'"),
    ("no-path-to-final", limbo, "states.limbo", "no path from this working state to a final state"),
    ("duplicate-trigger", add_transition("acquired", "locked", "failed"),
     f"transitions[{N}]", "duplicate trigger 'acquired' from state 'locked'"),
    ("duplicate-trigger-via-star", add_transition("fail", "drain", "done"),
     f"transitions[{N}]", "duplicate trigger 'fail' from state 'drain'"),
    ("states-not-mapping", set_key("states", value=["locked", "done"]),
     "states", "must be a non-empty mapping of state names, not list"),
    ("states-empty", set_key("states", value={}), "states", "must be a non-empty mapping"),
    ("transitions-not-list", set_key("transitions", value={"acquired": "inspect"}),
     "transitions", "must be a non-empty list, not dict"),
    ("transition-not-mapping", set_key("transitions", 0, value="locked -> inspect"),
     "transitions[0]", "must be a mapping with trigger, source, dest, not str"),
    ("version-string", set_key("version", value="1"), "version", "must be an integer, not str"),
    ("version-bool", set_key("version", value=True), "version", "must be an integer, not bool"),
    ("unsupported-version", set_key("version", value=2), "version", "unsupported version 2"),
    ("final-not-bool", set_key("states", "done", "final", value="maybe"),
     "states.done.final", "must be true or false, not str"),
    ("exit-not-int", set_key("states", "done", "exit", value="0"),
     "states.done.exit", "a final state needs an exit code 0-255, not '0'"),
    ("exit-out-of-range", set_key("states", "failed", "exit", value=256),
     "states.failed.exit", "a final state needs an exit code 0-255, not 256"),
    ("final-without-exit", del_key("states", "done", "exit"),
     "states.done.exit", "a final state needs an exit code 0-255, not None"),
    ("keeps-lock-not-bool", set_key("states", "failed", "keeps_lock", value="yes please"),
     "states.failed.keeps_lock", "must be true or false, not str"),
    ("action-not-str", set_key("states", "scale", "action", value=5),
     "states.scale.action", "must be an action name, not int"),
    ("state-not-mapping", set_key("states", "scale", value="scale_step"),
     "states.scale", "must be a mapping, not str"),
    ("working-state-without-action", set_key("states", "scale", value={}),
     "states.scale", "a working state needs an action (or final: true)"),
    ("state-name-not-str", set_key("states", 7, value={"final": True, "exit": 0}),
     "states", "state names must be strings, not int"),
    ("trigger-not-identifier", set_key("transitions", 0, "trigger", value="lock-acquired"),
     "transitions[0].trigger", "must be an identifier, not 'lock-acquired'"),
    ("dest-not-str", set_key("transitions", 0, "dest", value=["inspect"]),
     "transitions[0].dest", "must be a state name, not list"),
    ("source-not-str", set_key("transitions", 0, "source", value=3),
     "transitions[0].source", "must be a state name, a list of them or '*', not 3"),
    ("missing-initial", del_key("initial"), "initial", "missing"),
    ("missing-version", del_key("version"), "version", "missing"),
    ("missing-transitions", del_key("transitions"), "transitions", "missing"),
    ("missing-transition-dest", del_key("transitions", 0, "dest"), "transitions[0].dest", "missing"),
    ("unknown-top-key", set_key("verison", value=1), "verison", "unknown key (allowed: "),
    ("unknown-state-key", set_key("states", "scale", "timout", value="health_check_timeout"),
     "states.scale.timout", "unknown key"),
    ("unknown-transition-key", set_key("transitions", 0, "when", value="always"),
     "transitions[0].when", "unknown key"),
    ("final-state-with-action", set_key("states", "done", "action", value="drain"),
     "states.done.action", "a final state runs no action"),
    ("exit-on-working-state", set_key("states", "scale", "exit", value=0),
     "states.scale.exit", "only final states take this key"),
    ("transition-leaving-final", add_transition("again", "done", "locked"),
     f"transitions[{N}].source", "'done' is a final state; nothing leaves it"),
    ("outcome-not-declared", drop_transition("baked", "bake"),
     "states.bake", "action 'bake' can return 'baked' but no transition from 'bake'"),
    ("trigger-not-an-outcome", add_transition("bogus", "drain", "done"),
     "states.drain", "trigger 'bogus' from 'drain' is not an outcome of action 'drain'"),
    ("missing-fail", fail_only_from("locked", "inspect", "empty", "scale", "wait-instances",
                                    "wait-elb", "bake", "rollback"),
     "states.drain", "no 'fail' transition from working state 'drain'"),
    ("unknown-timeout-setting", set_key("states", "scale", "timeout", value="update_timeout"),
     "states.scale.timeout", "unknown timeout setting 'update_timeout' (known: "),
    ("timeout-not-positive", set_key("states", "scale", "timeout", value=-5),
     "states.scale.timeout", "must be more than 0 seconds, not -5"),
    ("timeout-not-a-number", set_key("states", "scale", "timeout", value=[60]),
     "states.scale.timeout", "must be a number of seconds or a setting's name, not list"),
    ("params-not-mapping", set_key("states", "scale", "params", value=[1]),
     "states.scale.params", "must be a mapping of parameter names, not list"),
    ("param-of-action-without-params", set_key("states", "scale", "params", value={"step": 2}),
     "states.scale.params.step", "unknown parameter of action 'scale_step' (it takes: none)"),
    ("unknown-param", with_marker(path="x.txt", colour="red"),
     "states.announce.params.colour", "unknown parameter of action "
                                      "'abfsm_example_checks:write_marker' (it takes: path, text)"),
    ("param-wrong-type", with_marker(path=3),
     "states.announce.params.path", "must be str, not int (3)"),
    ("param-missing-required", with_marker(),
     "states.announce.params.path", "missing: action 'abfsm_example_checks:write_marker' requires it"),
    ("third-party-module-missing", with_marker("nosuchpkg.checks:warm_cache", path="x"),
     "states.announce.action", "cannot import 'nosuchpkg.checks' (ModuleNotFoundError"),
    ("third-party-attribute-missing", with_marker("abfsm_example_checks:nope", path="x"),
     "states.announce.action", "module 'abfsm_example_checks' has no attribute 'nope'"),
    ("third-party-not-an-action", with_marker("abfsm_example_checks.marker:Path", path="x"),
     "states.announce.action", "is a type, not an abfsm action"),
    ("unknown-entry-point", with_marker("warm_cache", path="x"),
     "states.announce.action", "unknown action 'warm_cache' (known: "),
    ("final-result-unknown", set_key("states", "done", "result", value="great"),
     "states.done.result", "must be one of success, failure, paused, not 'great'"),
    ("resumable-without-lock", set_key("states", "rolled-back", "resumable", value=True),
     "states.rolled-back.resumable", "a resumable final state must keep the lock"),
    ("fail-to-a-success-state", set_key("states", "failed", "result", value="success"),
     "states.locked", "'fail' from 'locked' leads to 'failed', which is not a final state "
                      "with result: failure"),
    ("result-on-working-state", set_key("states", "scale", "result", value="success"),
     "states.scale.result", "only final states take this key"),
    ("bad-yaml", "version: 1\ninitial: locked\n  states: {}\n",
     "line 3", "not valid YAML: mapping values are not allowed here"),
    ("duplicate-yaml-key", "version: 1\ninitial: locked\ninitial: inspect\n",
     "line 3", "not valid YAML: duplicate key 'initial' (first on line 2)"),
    ("duplicate-state-name",
     packaged_spec_path().read_text(encoding="utf-8").replace(
         "  drain:          {action: drain,", "  scale:          {action: drain,"),
     "line ", "duplicate key 'scale'"),
    ("top-level-list", "- locked\n- done\n", "-", "the top level must be a mapping, not list"),
    ("empty-file", "", "-", "the top level must be a mapping, not null"),
]


def write_spec(tmp_path: Path, broken: Any) -> Path:
    if isinstance(broken, str):
        text = broken
    else:
        data = copy.deepcopy(packaged())
        broken(data)
        text = yaml.safe_dump(data, sort_keys=False)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("broken", "key", "problem"),
                         [pytest.param(b, k, p, id=i) for i, b, k, p in BROKEN])
def test_broken_spec_is_refused_naming_file_key_and_problem(
        tmp_path: Path, broken: Any, key: str, problem: str) -> None:
    """A broken spec raises SpecError (exit 2) naming the file, the key and the problem."""
    path = write_spec(tmp_path, broken)
    with pytest.raises(SpecError) as caught:
        load_spec(path, ACTIONS)
    err = caught.value
    assert err.exit_code == EXIT_USAGE
    assert err.path == str(path)
    assert err.key.startswith(key), err
    assert problem in err.problem, err
    assert str(err).startswith(f"{path}: {err.key}: ")
    assert "\n" not in str(err)


def test_corpus_covers_at_least_fifteen_distinct_problems() -> None:
    """The corpus holds at least 15 broken specs, none a repeat of another."""
    assert len(BROKEN) >= 15
    assert len({i for i, *_ in BROKEN}) == len(BROKEN)
    assert len({(k, p) for _, _, k, p in BROKEN}) == len(BROKEN)


def test_unreadable_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    """A spec path that cannot be read is a SpecError naming the file."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=r"nope\.yaml: -: cannot read the file"):
        load_spec(missing, ACTIONS)


def test_packaged_spec_loads() -> None:
    """The packaged states.yaml validates; its initial state is locked and done exits 0."""
    spec = load_spec(None, ACTIONS)
    assert spec.path == "states.yaml (packaged)"
    assert spec.initial == "locked"
    assert spec.states["done"].final and spec.states["done"].exit == 0
    assert Transition("healthy", "wait-elb", "bake") in spec.transitions
    assert Transition("baked", "bake", "drain") in spec.transitions
    assert set(spec.working_states) == {"locked", "inspect", "empty", "scale", "wait-instances",
                                        "wait-elb", "bake", "drain", "rollback"}


def test_root_states_yaml_is_the_packaged_spec() -> None:
    """The repository's root states.yaml is the packaged one (a symlink), not a copy."""
    root = ROOT / "states.yaml"
    assert root.resolve() == packaged_spec_path().resolve()


def test_machine_config_declares_every_move_and_keeps_abfsm_keys_out() -> None:
    """machine_config(): no auto transitions, invalid triggers raise, no abfsm-only keys."""
    spec = load_spec(None, ACTIONS)
    config = machine_config(spec)
    assert config["auto_transitions"] is False
    assert config["ignore_invalid_triggers"] is False
    assert config["initial"] == "locked"
    assert config["states"] == list(spec.states)
    assert all(isinstance(s, str) for s in config["states"])
    assert not ABFSM_KEYS & set(config)
    assert all(set(t) == {"trigger", "source", "dest"} for t in config["transitions"])
    assert len(config["transitions"]) == len(spec.transitions)


def test_machine_config_builds_a_machine_that_refuses_undeclared_moves() -> None:
    """A transitions.Machine from machine_config() has no to_<state> and raises on bad triggers."""
    from transitions import Machine, MachineError

    machine = Machine(**machine_config(load_spec(None, ACTIONS)))
    assert not hasattr(machine, "to_done")
    with pytest.raises(MachineError):
        machine.trigger("drained")  # declared only from drain, not from locked
    machine.trigger("acquired")
    assert machine.state == "inspect"


def test_bad_spec_stops_cli_before_any_aws_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`abfsm deploy --spec BAD` exits 2 with one stderr line and never builds AWS services."""
    bad = write_spec(tmp_path, set_key("states", "scale", "action", value="scale_stepz"))
    touched: list[str] = []
    monkeypatch.setattr(runner, "services_for", lambda *a, **k: touched.append("services"))
    monkeypatch.setattr(runner, "connect",
                        lambda *a, **k: touched.append("connect"))
    code = cli.main(["deploy", "--environment", "qa", "--spec", str(bad),
                     "--state-dir", str(tmp_path / "state")])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert touched == []
    assert out == ""
    assert err.splitlines() == [f"abfsm deploy: {bad}: states.scale.action: unknown action "
                                f"'scale_stepz' (known: {', '.join(sorted(ACTIONS))}; or package.module:attribute)"]
    assert not (tmp_path / "state").exists()


def test_bad_spec_subprocess_exits_2_with_one_line(tmp_path: Path) -> None:
    """`python -m abfsm deploy --spec BAD.yaml` exits 2, one stderr line, no AWS import."""
    bad = write_spec(tmp_path, drop_transition("baked", "bake"))
    env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", PYTHONPATH=str(ROOT))
    probe = ("import runpy, sys; sys.argv = ['abfsm'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('abfsm', run_name='__main__')\n"
             "finally:\n    sys.stdout.write(','.join(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('boto3', 'botocore'))))\n")
    proc = subprocess.run([sys.executable, "-c", probe, "deploy", "--environment", "qa",
                           "--spec", str(bad), "--state-dir", str(tmp_path / "state")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_USAGE
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(bad) in lines[0] and "states.bake" in lines[0] and "'baked'" in lines[0]
    assert proc.stdout == ""  # neither boto3 nor botocore was imported
    assert not (tmp_path / "state").exists()


# --------------------------------------------------------------------------- every spec runs


def forward_fakes(spec: Spec, limit: int = 100) -> dict[str, Callable[[Run], str]]:
    """Fake actions returning, from each state, the first declared outcome that leads on
    towards a final state with exit 0, preferring moves not taken yet (so loops end)."""
    good = {n for n, s in spec.states.items() if s.final and s.exit == 0}
    changed = True
    while changed:  # every state from which an exit-0 final state is reachable
        changed = False
        for tr in spec.transitions:
            if tr.dest in good and tr.source not in good:
                good.add(tr.source)
                changed = True
    taken: set[tuple[str, str]] = set()

    def fake(run: Run) -> str:
        if len(taken) > limit:
            raise RuntimeError("fake actions looped")
        outcomes = ACTIONS[spec.states[run.state].action].outcomes  # type: ignore[index]
        forward = [t.trigger for t in spec.transitions
                   if t.source == run.state and t.trigger in outcomes and t.dest in good]
        fresh = [t for t in forward if (run.state, t) not in taken]
        trigger = (fresh or forward)[0]
        taken.add((run.state, trigger))
        return trigger

    return {st.action: fake for st in spec.states.values() if st.action}


def no_client(service: str) -> Any:
    raise AssertionError(f"a fake-action run built an AWS client ({service})")


@pytest.mark.parametrize("spec_path", [None, *EXAMPLE_SPECS],
                         ids=["packaged", *(p.name for p in EXAMPLE_SPECS)])
def test_every_spec_drives_to_a_final_state(tmp_path: Path, clock: FakeClock,
                                            spec_path: Path | None) -> None:
    """Every shipped spec runs from its initial state to an exit-0 final state with fakes."""
    spec = load_spec(spec_path, ACTIONS)
    settings = Settings(environment="qa", state_dir=str(tmp_path), spec=spec_path and str(spec_path))
    lock = Lock(LocalStore(tmp_path, "qa"), clock)
    record = new_record("qa", spec.version, spec.initial, settings.to_dict(), clock)
    run = Run(settings=settings, plan=Plan(), aws=Services(no_client), clock=clock, lock=lock,
              record=record, spec=spec)
    with capture_logs() as logs:
        outcome = runner.drive(run, spec.initial, actions=forward_fakes(spec))
    assert outcome.exit_code == 0, outcome.message
    assert spec.is_final(record.state) and spec.states[record.state].exit == 0
    moves = [(h["src"], h["trigger"], h["dst"]) for h in record.history]
    assert moves and moves[0][0] == spec.initial and moves[-1][2] == record.state
    declared = {(t.source, t.trigger, t.dest) for t in spec.transitions}
    assert all(move in declared for move in moves)
    assert [(e["src"], e["trigger"], e["dst"]) for e in logs if e["event"] == "transition"] == moves


def test_example_specs_exist_and_differ_from_the_packaged_one() -> None:
    """examples/specs/ holds valid specs, each a different machine (its moves, or its states'
    params: bake-with-alarms.yaml is the packaged machine with a parameterised bake)."""
    assert EXAMPLE_SPECS
    packaged = load_spec(None, ACTIONS)
    for path in EXAMPLE_SPECS:
        spec = load_spec(path, ACTIONS)
        assert (set(spec.transitions), dict(spec.states)) != (
            set(packaged.transitions), dict(packaged.states)), path
