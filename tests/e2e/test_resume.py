"""Crash and resume, end to end: the CLI killed in every working state, then `abfsm resume`.

Deployments here move qa-a (4 serving) to qa-b in two steps of 2 (desired 2 -> 4), so a
`scale` that added capacity instead of setting it would show up as a desired capacity of 6.
Background processes run tests/support/crash_cli.py: the real CLI plus hooks that SIGKILL
it in a given state or make the new instances come up broken (see that module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env, capacities, elb_states, instance_ids
from tests.support.crash_cli import Records, break_instances, reap, start, waiting_in

BUCKET = "qa-locks"
DEPLOY = ("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "4",
          "--instance-count-step", "2", "--health-check-timeout", "600")
FAST = (*DEPLOY, "--update-timeout", "0.1")  # a real clock polling every 0.1 s


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A background CLI a failed test left running is killed, not left polling."""
    yield
    reap()


def store_args(store: str) -> tuple[str, ...]:
    return ("--lock-bucket-name", BUCKET) if store == "bucket" else ()


def records(make: Any, tmp_path: Path, store: str, env: str = "qa") -> Records:
    return Records(make, env, bucket=BUCKET if store == "bucket" else None,
                   state_dir=tmp_path / "state")


def desired_sets(*runs: Any) -> list[tuple[str, int]]:
    """(ASG, DesiredCapacity) of every UpdateAutoScalingGroup the runs logged, in order."""
    return [(e["params"]["AutoScalingGroupName"], e["params"]["DesiredCapacity"])
            for run in runs for e in run.named("aws.call")
            if e["action"] == "UpdateAutoScalingGroup"]


def assert_clean_deployment(make: Any, recs: Records, run_id: str, *runs: Any) -> None:
    """What a clean qa-a -> qa-b deployment of 4 leaves, and no desired capacity above 4."""
    caps = capacities(make, ["qa-a", "qa-b"])
    assert caps["qa-a"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-b"]["desired"] == 4 and caps["qa-b"]["instances"] == 4
    serving = elb_states(make, "qa-public")
    assert {i: serving.get(i) for i in instance_ids(make, "qa-b")} == {
        i: "InService" for i in instance_ids(make, "qa-b")}
    assert recs.lock() is None
    assert recs.archived()[run_id]["status"] == "done"
    sets = desired_sets(*runs)
    assert max(d for asg, d in sets if asg == "qa-b") == 4
    assert {d for asg, d in sets if asg == "qa-a"} == {0}


# (state, how the process is caught in it). "self": the process SIGKILLs itself right after
# the state's action ran (these states take milliseconds; nothing outside can catch them);
# "stopped"/"unhealthy": the new instances come up broken, the state holds, the test kills it.
CRASHES = [("locked", "self"), ("inspect", "self"), ("scale", "self"),
           ("wait-instances", "unhealthy"), ("wait-elb", "stopped"), ("drain", "self")]
# Every state with the lock bucket; with the local state dir, one quick and one held state.
CASES = [(*c, "bucket") for c in CRASHES] + [("scale", "self", "local"),
                                              ("wait-elb", "stopped", "local")]


def crash(server: Any, tmp_path: Path, state: str, how: str, store: str) -> Any:
    """Start a deploy and SIGKILL it in `state`; returns the finished Background."""
    if how == "self":
        # scale: its second entry (desired 2 already set, 4 just set) is the interesting one.
        where = f"{state}:after:2" if state == "scale" else f"{state}:after"
        run = start(cli_env(server), tmp_path, *FAST, *store_args(store),
                    extra_env={"ABFSM_TEST_SIGKILL_IN": where})
        assert run.finish() == -9, run.stderr
        return run
    run = start(cli_env(server), tmp_path, *FAST, *store_args(store),
                extra_env={"ABFSM_TEST_NEW_INSTANCES": how})
    run.wait_for(waiting_in(state))
    assert run.kill() == -9
    return run


@pytest.mark.parametrize(("state", "how", "store"), CASES)
def test_sigkill_in_each_state_then_resume_finishes_like_a_clean_deploy(
        cli, make, server, tmp_path, state, how, store):
    """SIGKILL in STATE leaves a `running` record there; resume (stale heartbeat) finishes it."""
    build_env(make, "qa", active="a", active_count=4, bucket=BUCKET if store == "bucket" else None)
    recs = records(make, tmp_path, store)
    killed = crash(server, tmp_path, state, how, store)
    left = recs.lock()
    assert (left["status"], left["state"]) == ("running", state)
    if how != "self":
        break_instances("qa-b", "running" if how == "stopped" else "healthy", make=make)
    recs.age_heartbeat(3600)  # the CI job died an hour ago

    resumed = cli("resume", "--environment", "qa", *store_args(store))

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    run_id = killed.named("run.started")[0]["run_id"]
    assert resumed.named("run.started")[0]["run_id"] == run_id
    assert resumed.transitions[0][0] == state
    assert resumed.transitions[-1] == ("drain", "done", "drained")
    assert_clean_deployment(make, recs, run_id, killed, resumed)


def test_sigkill_in_empty_then_resume_refills_the_single_asg(cli, make, server, tmp_path):
    """--single-asg killed right after emptying its ASG: resume finishes with qa at 4."""
    build_env(make, "qa", single=True, active="a", active_count=3, bucket=BUCKET)
    recs = records(make, tmp_path, "bucket")
    killed = start(cli_env(server), tmp_path, "deploy", "--environment", "qa", "--single-asg",
                   "--instance-count", "4", "--update-timeout", "0.1",
                   "--lock-bucket-name", BUCKET, extra_env={"ABFSM_TEST_SIGKILL_IN": "empty"})
    assert killed.finish() == -9, killed.stderr
    assert (recs.lock()["status"], recs.lock()["state"]) == ("running", "empty")
    assert capacities(make, ["qa"])["qa"]["desired"] == 0
    recs.age_heartbeat(3600)

    resumed = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET)

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert resumed.transitions[0] == ("empty", "scale", "emptied")
    caps = capacities(make, ["qa"])["qa"]
    assert caps["desired"] == 4 and caps["instances"] == 4
    assert recs.lock() is None
    run_id = killed.named("run.started")[0]["run_id"]
    assert recs.archived()[run_id]["status"] == "done"
    assert max(d for asg, d in desired_sets(killed, resumed) if asg == "qa") == 4


def test_resume_after_a_manual_fix_in_wait_elb(cli, make, server, tmp_path):
    """wait-elb times out on stopped instances (exit 1); status shows it; fix; resume exits 0."""
    build_env(make, "qa", active="a", active_count=4, bucket=BUCKET)
    recs = records(make, tmp_path, "bucket")
    failed = start(cli_env(server), tmp_path, *DEPLOY, "--update-timeout", "30",
                   "--lock-bucket-name", BUCKET,
                   extra_env={"ABFSM_TEST_NEW_INSTANCES": "stopped", "ABFSM_VIRTUAL_CLOCK": "1"})
    assert failed.finish() == 1, failed.stderr
    assert failed.named("run.finished")[0]["failed_state"] == "wait-elb"
    caps = capacities(make, ["qa-a", "qa-b"])  # no --rollback-on-failure: nothing cleaned up
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (4, 4)

    shown = cli("status", "--environment", "qa", "--lock-bucket-name", BUCKET, "--format", "json")
    current = json.loads(shown.stdout)["current"]
    assert shown.returncode == 0
    assert (current["status"], current["failed_state"]) == ("failed", "wait-elb")
    assert "wait-elb: 0/4 InService in qa-public after 600 s" in current["last_error"]

    break_instances("qa-b", "running", make=make)  # the fix: the instances serve again
    resumed = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET)

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert resumed.transitions[0] == ("wait-elb", "bake", "healthy")
    run_id = failed.named("run.started")[0]["run_id"]
    assert_clean_deployment(make, recs, run_id, failed, resumed)
    after = json.loads(cli("status", "--environment", "qa", "--lock-bucket-name", BUCKET,
                           "--format", "json").stdout)
    assert after["free"] is True
    assert after["recent"][0]["run_id"] == run_id and after["recent"][0]["status"] == "done"


def test_resume_from_an_unknown_state_exits_2_before_any_aws_call(cli, server):
    """`--from nope` with `--spec` is a usage error (exit 2) decided before the lock is even
    read (without --spec the run's recorded spec decides, once the lock is read)."""
    from abfsm.spec import packaged_spec_path

    result = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET, "--from", "nope",
                 "--spec", str(packaged_spec_path()))
    assert result.returncode == 2
    assert "--from nope: not a state of" in result.stderr
    assert "wait-elb" in result.stderr  # the message lists the states there are
    assert server.calls() == []


def test_resume_from_a_state_the_context_cannot_support_exits_2(cli, make, server, tmp_path):
    """A run that died entering inspect has no target: `--from drain` exits 2, listing options."""
    run_id, recs = dead_run_entering_inspect(server, tmp_path, make)
    recs.age_heartbeat(3600)
    server.reset_calls()

    result = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET, "--from", "drain")

    assert result.returncode == 2
    assert f"cannot resume run {run_id} from drain" in result.stderr
    assert "it can resume from: locked, inspect" in result.stderr
    assert not server.mutating_calls()
    assert recs.lock()["state"] == "inspect"


def live_looking_run_killed_in_scale(server: Any, tmp_path: Path, make: Any) -> tuple[Any, Records]:
    """A deploy (30 s polls: stale after 90 s) SIGKILLed in scale a moment ago."""
    build_env(make, "qa", active="a", active_count=4, bucket=BUCKET)
    killed = start(cli_env(server), tmp_path, *DEPLOY, "--update-timeout", "30",
                   "--lock-bucket-name", BUCKET, extra_env={"ABFSM_TEST_SIGKILL_IN": "scale"})
    assert killed.finish() == -9, killed.stderr
    return killed, records(make, tmp_path, "bucket")


def test_resume_of_a_live_run_is_refused_without_force(cli, make, server, tmp_path):
    """A `running` record with a fresh heartbeat (stale after 3 x 30 s): resume exits 3."""
    killed, recs = live_looking_run_killed_in_scale(server, tmp_path, make)
    before = recs.lock_bytes()
    server.reset_calls()

    result = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET)

    assert result.returncode == 3
    run_id = killed.named("run.started")[0]["run_id"]
    assert f"run {run_id}" in result.stderr and "is running in scale" in result.stderr
    assert "heartbeat" in result.stderr and "--force" in result.stderr
    assert not server.mutating_calls()
    assert recs.lock_bytes() == before


def test_resume_with_force_takes_over_a_live_looking_run(cli, make, server, tmp_path):
    """--force resumes a `running` record with a fresh heartbeat and finishes the deployment."""
    killed, recs = live_looking_run_killed_in_scale(server, tmp_path, make)

    resumed = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET, "--force")

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    run_id = killed.named("run.started")[0]["run_id"]
    assert_clean_deployment(make, recs, run_id, killed, resumed)


def test_resume_with_nothing_to_resume_exits_3(cli, make, server):
    """No lock: resume exits 3 saying the environment is free, and changes nothing."""
    make("s3").create_bucket(Bucket=BUCKET)
    server.reset_calls()
    result = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET)
    assert result.returncode == 3
    assert "nothing to resume" in result.stderr and "free" in result.stderr
    assert not server.mutating_calls()


# --- abfsm unlock ---------------------------------------------------------------------------


def dead_run_entering_inspect(server: Any, tmp_path: Path, make: Any) -> tuple[str, Records]:
    """A deploy SIGKILLed as it entered inspect: the lock bucket is all it ever touched."""
    make("s3").create_bucket(Bucket=BUCKET)
    killed = start(cli_env(server), tmp_path, *FAST, "--lock-bucket-name", BUCKET,
                   extra_env={"ABFSM_TEST_SIGKILL_IN": "inspect:before"})
    assert killed.finish() == -9, killed.stderr
    return killed.named("run.started")[0]["run_id"], records(make, tmp_path, "bucket")


def test_unlock_with_the_run_id_removes_the_lock_and_says_what_it_removed(cli, make, server,
                                                                          tmp_path):
    """`unlock --run-id ID` of the holding run removes the lock and prints run, state, holder."""
    run_id, recs = dead_run_entering_inspect(server, tmp_path, make)
    result = cli("unlock", "--environment", "qa", "--lock-bucket-name", BUCKET, "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"removed s3://{BUCKET}/qa.lock: run {run_id} by ")
    assert "status running in state inspect" in result.stdout
    assert recs.lock() is None


def test_unlock_with_another_run_id_exits_3_and_keeps_the_lock(cli, make, server, tmp_path):
    """`unlock --run-id` naming a different run is refused (exit 3); the lock stays."""
    run_id, recs = dead_run_entering_inspect(server, tmp_path, make)
    result = cli("unlock", "--environment", "qa", "--lock-bucket-name", BUCKET,
                 "--run-id", "20990101T000000Z-abcdef")
    assert result.returncode == 3
    assert f"held by run {run_id}, not 20990101T000000Z-abcdef" in result.stderr
    assert recs.lock()["run_id"] == run_id


def test_unlock_of_a_foreign_lock_needs_force(cli, make, server, tmp_path):
    """A lock abfsm did not write (a manual freeze) survives --run-id and goes with --force."""
    make("s3").create_bucket(Bucket=BUCKET)
    recs = records(make, tmp_path, "bucket")
    recs.write_lock(b"")  # someone froze the environment by hand

    refused = cli("unlock", "--environment", "qa", "--lock-bucket-name", BUCKET, "--run-id", "x")
    assert refused.returncode == 3
    assert "only --force removes a lock abfsm did not write" in refused.stderr
    assert recs.lock_bytes() == b""

    forced = cli("unlock", "--environment", "qa", "--lock-bucket-name", BUCKET, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "a lock abfsm did not write (0 bytes" in forced.stdout
    assert recs.lock_bytes() is None


def test_unlock_of_a_free_environment_exits_3(cli, make, server, tmp_path):
    """Nothing to remove: exit 3 and a message saying the environment is free."""
    result = cli("unlock", "--environment", "qa", "--force")
    assert result.returncode == 3
    assert "no lock to remove" in result.stderr
