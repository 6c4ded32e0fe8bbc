"""SIGTERM / SIGINT during a wait: the run stops between polls, keeps its lock, and resumes."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env, capacities
from tests.support.crash_cli import Records, break_instances, reap, start, waiting_in

BUCKET = "qa-locks"


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A background CLI a failed test left running is killed, not left polling."""
    yield
    reap()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_wait_elb_exits_130_at_once_keeping_the_lock_then_resume_finishes(
        cli, make, server, tmp_path, signum):
    """A signal mid-wait (30 s polls): exit 130 within 2 s, record interrupted; resume -> 0."""
    build_env(make, "qa", active="a", active_count=4, bucket=BUCKET)
    recs = Records(make, "qa", bucket=BUCKET)
    run = start(cli_env(server), tmp_path, "deploy", "--environment", "qa", "--elb-name",
                "qa-public", "--instance-count", "4", "--update-timeout", "30",
                "--lock-bucket-name", BUCKET, extra_env={"ABFSM_TEST_NEW_INSTANCES": "stopped"})
    run.wait_for(waiting_in("wait-elb"))

    sent = time.monotonic()
    run.proc.send_signal(signum)
    code = run.finish()
    took = time.monotonic() - sent

    assert code == 130, run.stderr
    assert took < 2  # it did not sit out the 30 s poll interval
    finished = run.named("run.finished")[0]
    assert (finished["outcome"], finished["exit_code"]) == ("interrupted", 130)
    assert f"stopped by {signum.name}" in finished["error"]
    record = recs.lock()
    assert (record["status"], record["state"]) == ("interrupted", "wait-elb")
    assert capacities(make, ["qa-a"])["qa-a"]["desired"] == 4  # not drained

    break_instances("qa-b", "running", make=make)
    resumed = cli("resume", "--environment", "qa", "--lock-bucket-name", BUCKET)

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert resumed.named("run.started")[0]["previous_status"] == "interrupted"
    assert resumed.transitions[0] == ("wait-elb", "bake", "healthy")
    caps = capacities(make, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-b"]["desired"]) == (0, 4)
    assert recs.lock() is None
    assert recs.archived()[record["run_id"]]["status"] == "done"
