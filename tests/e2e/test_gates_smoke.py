"""examples/specs/smoke-test.yaml end to end: the hook (./smoke.sh in the run's directory)
and the HTTP check, passing, and each saying no (-> rollback while the old ASG serves).

moto's instances have private IPs nobody can reach, so the test points the example's URL at
an HTTP server it runs on 127.0.0.1 (keeping `{instance_id}`, so every new instance is still
a target of its own); no request ever leaves loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.aws_env import build_env, capacities, elb_states, instance_ids
from tests.support.gates import Answers, http_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/specs/smoke-test.yaml"
DEPLOY = ("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "2",
          "--update-timeout", "10")
VIRTUAL = {"ABFSM_VIRTUAL_CLOCK": "1"}


def example_on_loopback(tmp_path: Path, base: str) -> Path:
    """The example spec with only its health-check URL moved to the test's server."""
    data = yaml.safe_load(EXAMPLE.read_text())
    url = data["states"]["health-check"]["params"]["url"]
    assert url == "http://{private_ip}:8080/health"
    data["states"]["health-check"]["params"]["url"] = base + "/health/{instance_id}"
    spec = tmp_path / "smoke-test.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def smoke_script(tmp_path: Path, body: str) -> None:
    script = tmp_path / "smoke.sh"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)


def test_smoke_tests_pass_and_the_deployment_finishes(cli, make, server, tmp_path):
    """./smoke.sh exits 0 and both instances answer "ok" 3 times: smoke-test -> health-check
    -> drain -> done; the hook saw the run in its ABFSM_* variables and SMOKE_SUITE."""
    build_env(make, "qa", active="a", active_count=2)
    smoke_script(tmp_path, 'echo "suite=$SMOKE_SUITE target=$ABFSM_TARGET_ASG ids=$ABFSM_INSTANCE_IDS"')
    answers = Answers()
    with http_server(answers) as base:
        result = cli(*DEPLOY, "--spec", str(example_on_loopback(tmp_path, base)))
    assert result.returncode == 0, result.stderr
    new_ids = instance_ids(make, "qa-b")
    assert [e["line"] for e in result.named("hook.output")] == [
        f"suite=quick target=qa-b ids={','.join(new_ids)}"]
    assert ("smoke-test", "health-check", "passed") in result.transitions
    assert ("health-check", "drain", "passed") in result.transitions
    assert sorted(set(answers.seen)) == [f"/health/{i}" for i in new_ids]
    assert capacities(make, ["qa-a"])["qa-a"]["desired"] == 0


def test_a_failing_hook_rolls_back_while_the_old_asg_serves(cli, make, server, tmp_path):
    """./smoke.sh exits 1: `failed` -> rollback -> rolled-back, exit 1; its output is logged,
    the new ASG is back to 0 and the old one still serves; the HTTP check never ran."""
    build_env(make, "qa", active="a", active_count=2)
    old_ids = instance_ids(make, "qa-a")
    smoke_script(tmp_path, 'echo "checkout: HTTP 500 from /cart"; exit 1')
    answers = Answers()
    with http_server(answers) as base:
        result = cli(*DEPLOY, "--spec", str(example_on_loopback(tmp_path, base)))
    assert result.returncode == 1, result.stderr
    assert result.transitions[-2:] == [("smoke-test", "rollback", "failed"),
                                       ("rollback", "rolled-back", "rolled_back")]
    assert result.named("hook.failed")[0]["exit_code"] == 1
    assert (result.finished["failed_state"], result.finished["error"]) == (
        "smoke-test", "smoke-test: hook ./smoke.sh exited 1")
    assert [e["line"] for e in result.named("hook.output")] == ["checkout: HTTP 500 from /cart"]
    assert answers.seen == []
    assert_rolled_back(make, old_ids)


def test_a_failing_http_check_rolls_back_naming_the_target(cli, make, server, tmp_path):
    """The second new instance answers 503 until the state's 180 s timeout: `failed` ->
    rollback; http_check.failed names that instance only, its answer and when."""
    build_env(make, "qa", active="a", active_count=2)
    old_ids = instance_ids(make, "qa-a")
    smoke_script(tmp_path, "exit 0")
    answers = Answers()
    paths: list[str] = []

    def second_instance_is_sick(path: str) -> tuple[int, str]:
        if path not in paths:
            paths.append(path)
        sick = len(paths) > 1 and path == paths[1]  # the second instance asked (sorted ids)
        return (503, "warming up") if sick else (200, "ok")

    answers.rule = second_instance_is_sick
    with http_server(answers) as base:
        result = cli(*DEPLOY, "--spec", str(example_on_loopback(tmp_path, base)),
                     extra_env=VIRTUAL)
    assert result.returncode == 1, result.stderr
    assert result.transitions[-2:] == [("health-check", "rollback", "failed"),
                                       ("rollback", "rolled-back", "rolled_back")]
    failed = result.named("http_check.failed")[0]
    sick = paths[1].rsplit("/", 1)[1]
    assert [(t["target"], t["answered"]) for t in failed["targets"]] == [
        (sick, "HTTP 503 (expected 200)")]
    assert failed["timeout_s"] == 180 and failed["targets"][0]["at"].endswith("Z")
    assert result.finished["error"] == (f"health-check: no pass within 180 s: {sick}: "
                                        f"HTTP 503 (expected 200) at {failed['targets'][0]['at']}")
    assert_rolled_back(make, old_ids)


def assert_rolled_back(make: Any, old_ids: list[str]) -> None:
    caps = capacities(make, ["qa-a", "qa-b"])
    assert caps["qa-b"]["desired"] == 0 and caps["qa-a"]["desired"] == 2
    assert {i: s for i, s in elb_states(make, "qa-public").items() if i in old_ids} == {
        i: "InService" for i in old_ids}
