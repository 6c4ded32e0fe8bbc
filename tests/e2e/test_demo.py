"""`abfsm demo` end to end: the embedded emulator's world model by default, moto's instant
world with --fast; every JSON line carries the run's run_id and env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from abfsm.log_schema import validate

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run([sys.executable, "-m", "abfsm", "demo", "--log-format", "json", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return demo(tmp_path_factory.mktemp("demo"))[1]


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def seen(events: list[dict[str, Any]], state: str) -> set[str]:
    return {n["state"] for p in named(events, "wait.progress") if p["state"] == state
            for n in p["not_ready"]}


def test_demo_shows_instances_boot_pass_health_checks_and_drain(world_run):
    """The default demo waits while new instances are Pending, then OutOfService in the ELB,
    and while the old ones are Terminating; it succeeds in under 15 s."""
    assert "Pending/Healthy" in seen(world_run, "wait-instances")
    assert "OutOfService" in seen(world_run, "wait-elb")
    assert "Terminating in demo-a" in seen(world_run, "drain")
    finished = named(world_run, "run.finished")[-1]
    assert (finished["outcome"], finished["exit_code"]) == ("done", 0)
    assert finished["duration_s"] < 15
    assert named(world_run, "demo.after")[0]["after"] == {
        "demo-a": {"desired": 0, "instances": 0}, "demo-b": {"desired": 2, "instances": 2}}


def test_demo_ready_carries_the_run_id_and_env(world_run):
    """demo.ready names the run it prepares; every line conforms to the log schema."""
    [ready] = named(world_run, "demo.ready")
    [started] = named(world_run, "run.started")
    assert (ready["run_id"], ready["env"]) == (started["run_id"], "demo")
    assert ready["world"]["scale"] > 1
    assert [p for e in world_run for p in validate(e)] == []


def test_demo_fast_is_moto_s_instant_world(tmp_path):
    """--fast: no instance is ever seen Pending or OutOfService; the run still succeeds."""
    _, events = demo(tmp_path, "--fast")
    [ready] = named(events, "demo.ready")
    assert ready["world"] is None and ready["run_id"] == named(events, "run.started")[0]["run_id"]
    assert seen(events, "wait-instances") | seen(events, "wait-elb") == set()
    assert named(events, "run.finished")[-1]["exit_code"] == 0
