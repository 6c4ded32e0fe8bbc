"""The JSON log schema (abfsm/log_schema.py): the validator itself, the code against it, and
whole runs of the CLI against moto_server validated line by line."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from abfsm import log_schema
from abfsm.log_schema import EVENTS, validate
from tests.support.aws_env import build_env

ROOT = Path(__file__).resolve().parents[2]
LEVEL_METHODS = {"debug", "info", "warning", "error"}

TRANSITION = {"ts": "2026-01-01T12:00:00.000001Z", "level": "info", "event": "transition",
              "run_id": "20260101T120000Z-abc123", "env": "qa", "src": "scale",
              "dst": "wait-instances", "trigger": "scaled", "elapsed_s": 0.015}


def lines_of(stdout: str) -> list[Any]:
    """Every stdout line parsed as JSON (a line that is not JSON fails the test)."""
    out = []
    for number, line in enumerate(stdout.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"stdout line {number} is not JSON: {line!r}")
    return out


def schema_problems(stdout: str) -> list[str]:
    return [f"line {n}: {p}" for n, e in enumerate(lines_of(stdout), 1) for p in validate(e)]


# -- the validator ------------------------------------------------------------------------

def test_a_conforming_event_has_no_problems():
    """A transition event with every documented key of the right type validates clean."""
    assert validate(TRANSITION) == []


def test_an_unknown_event_is_reported():
    """An event name the schema does not document is a problem."""
    assert validate({**TRANSITION, "event": "transition.v2"}) == [
        "transition.v2: unknown event (not in abfsm.log_schema.EVENTS)"]


def test_a_line_without_run_id_or_env_is_reported():
    """run_id and env are required on every line of a run."""
    event = {k: v for k, v in TRANSITION.items() if k not in ("run_id", "env")}
    assert validate(event) == ["transition: missing key 'run_id'", "transition: missing key 'env'"]


def test_a_mistyped_key_is_reported():
    """A number sent as a string, or a bool where an int belongs, is a problem."""
    assert validate({**TRANSITION, "elapsed_s": "0.015"}) == [
        "transition: elapsed_s='0.015' is not number"]
    progress = {**TRANSITION, "event": "wait.progress", "state": "wait-elb", "poll": True,
                "ready": 0, "total": 4, "what": "healthy", "not_ready": [], "elapsed_s": 0,
                "remaining_s": 600}
    for key in ("src", "dst", "trigger"):
        progress.pop(key)
    assert validate(progress) == ["wait.progress: poll=True is not int"]


def test_an_undocumented_key_is_reported():
    """A key the schema does not list is a problem, so new keys get documented."""
    assert validate({**TRANSITION, "extra": 1}) == ["transition: undocumented key 'extra'"]


def test_a_level_other_than_the_documented_one_is_reported():
    """transition is documented at info; the same event at warning is a problem."""
    assert validate({**TRANSITION, "level": "warning"}) == [
        "transition: level 'warning', documented as 'info'"]


def test_a_timestamp_that_is_not_utc_iso_is_reported():
    """ts must be ISO 8601 in UTC."""
    assert validate({**TRANSITION, "ts": "2026-01-01T13:00:00+01:00"}) == [
        "transition: ts '2026-01-01T13:00:00+01:00' is not an ISO 8601 UTC time"]


def test_a_line_that_is_not_an_object_is_reported():
    """A JSON array or string on a line is not an event."""
    assert validate(["transition"]) == ["not a JSON object: list"]


def test_the_markdown_table_lists_every_event_once():
    """The README table has one row per event, with its level and its keys."""
    table = log_schema.markdown_table()
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == list(EVENTS)
    assert "| `inspect.raise_max` | warning |" in table
    assert "`failed_state` str or null" in table  # no bare | inside a cell


# -- the code against the schema ----------------------------------------------------------

def logged_events() -> list[tuple[str, str, str, set[str], bool]]:
    """(file:line, event, level, keyword keys, has **kwargs) of every log call in abfsm/."""
    found = []
    for path in sorted((ROOT / "abfsm").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVEL_METHODS and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                continue
            receiver = ast.unparse(node.func.value)
            if receiver.split(".")[-1] not in ("log", "_log"):
                continue
            keys = {k.arg for k in node.keywords if k.arg is not None}
            spread = any(k.arg is None for k in node.keywords)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.append((where, node.args[0].value, node.func.attr, keys, spread))
    return found


def test_every_event_the_code_logs_is_documented_with_its_level_and_keys():
    """Each log call in abfsm/ names a documented event, at its level, with its keys."""
    calls = logged_events()
    assert len(calls) >= 15, "the scan found too few log calls to prove anything"
    problems = []
    for where, name, level, keys, spread in calls:
        spec = EVENTS.get(name)
        if spec is None:
            problems.append(f"{where}: {name} is not in abfsm.log_schema.EVENTS")
            continue
        if level != spec["level"]:
            problems.append(f"{where}: {name} logged at {level}, documented {spec['level']}")
        documented = set(spec["required"]) | set(spec.get("optional", {}))
        if keys - documented:
            problems.append(f"{where}: {name} logs undocumented {sorted(keys - documented)}")
        missing = set(spec["required"]) - keys
        if missing and not spread:
            problems.append(f"{where}: {name} lacks required {sorted(missing)}")
    assert problems == []


def test_every_documented_event_is_logged_somewhere():
    """The schema documents no event the code no longer logs."""
    assert set(EVENTS) == {name for _, name, _, _, _ in logged_events()}


# -- whole runs ---------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [(), ("--dry-run",), ("--verbose",)],
                         ids=["deployment", "dry-run", "verbose"])
def test_every_line_of_a_run_matches_the_schema(cli, make, server, extra):
    """Every stdout line of a stepped deployment (its dry run, its --verbose run) is valid."""
    # With a lock bucket and a MaxSize raise, so s3 aws.call and inspect.raise_max appear.
    build_env(make, "qa", active="a", active_count=2, max_size=3, bucket="qa-locks")
    result = cli("deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                 "--instance-count", "4", "--instance-count-step", "2",
                 "--update-timeout", "0.1", *extra)
    assert result.returncode == 0, result.stderr
    assert schema_problems(result.stdout) == []
    events = lines_of(result.stdout)
    assert {e["run_id"] for e in events} == {result.finished["run_id"]}
    assert {e["env"] for e in events} == {"qa"}
    names = {e["event"] for e in events}
    common = {"run.started", "inspect.decided", "inspect.raise_max", "transition", "run.finished"}
    deployed = common | {"lock.acquired", "aws.call", "scale.step", "wait.progress",
                         "bake.skipped", "drain.started"}
    if extra == ("--dry-run",):
        assert names == common | {"lock.free", "plan"}
    elif extra == ("--verbose",):
        assert names == deployed | {"aws.read"}  # every read call too
    else:
        assert names == deployed


def test_every_line_of_a_failed_run_matches_the_schema(deploy_broken, cli, make, server):
    """Every stdout line of a run failing in wait-elb is a valid event, state.failed included."""
    build_env(make, "qa", active="a", active_count=2, bucket="qa-locks")

    result, _ = deploy_broken("deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                              "--instance-count", "2", "--health-check-timeout", "60",
                              "--update-timeout", "30")
    assert result.returncode == 1, result.stderr
    assert schema_problems(result.stdout) == []
    [failed] = result.named("state.failed")
    assert (failed["state"], failed["exit_code"], failed["next"]) == ("wait-elb", 1, "fail")
    assert (result.finished["outcome"], result.finished["exit_code"]) == ("failed", 1)


def test_one_transition_event_per_state_change(cli, make, server):
    """The transition events are exactly the run's path and its record's history, one each."""
    build_env(make, "qa", active="a", active_count=2, bucket="qa-locks")
    result = cli("deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                 "--instance-count", "3", "--instance-count-step", "2", "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr
    moves = result.transitions
    run_id = result.finished["run_id"]
    body = make("s3").get_object(Bucket="qa-locks", Key=f"qa/runs/{run_id}.json")["Body"].read()
    history = json.loads(body)["history"]
    assert moves == [(h["src"], h["dst"], h["trigger"]) for h in history]
    assert [src for src, _, _ in moves] == [p["state"] for p in result.finished["path"]]
    assert all(moves[i][1] == moves[i + 1][0] for i in range(len(moves) - 1))
    assert moves[0][0] == "locked" and moves[-1][1] == result.finished["final_state"] == "done"
    assert len(moves) == 9  # locked, inspect, (scale, wait-instances) x2, wait-elb, bake, drain
