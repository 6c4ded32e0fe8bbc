"""Ctrl-C / SIGTERM during an AWS call and its retries (not only between polls): exit 130
within about a second, the record saved as interrupted."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env, capacities
from tests.support.crash_cli import Records, reap, start
from tests.support.fault_proxy import FaultProxy, Match

BUCKET = "qa-locks"
DESCRIBE = Match(action="DescribeAutoScalingGroups")


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """A background CLI a failed test left running is killed, not left waiting."""
    yield
    reap()


def _deploy(server, tmp_path, proxy, *extra):
    env = {**cli_env(server), "AWS_ENDPOINT_URL": proxy.endpoint}
    return start(env, tmp_path, "deploy", "--environment", "qa", "--elb-name", "qa-public",
                 "--instance-count", "2", *extra)


def _interrupt(run, signum):
    sent = time.monotonic()
    run.proc.send_signal(signum)
    try:
        code = run.finish(timeout=15)
    except Exception:  # noqa: BLE001 - still running: the signal was not honoured
        pytest.fail("the CLI did not stop within 15 s of the signal")
    return code, time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_call_that_never_answers_exits_130(server, make, tmp_path, signum):
    """inspect's DescribeAutoScalingGroups never answered: a signal ends the run in < 2 s,
    exit 130, record interrupted in inspect, nothing scaled."""
    build_env(make, "qa", active="a", active_count=2)
    with FaultProxy(server.endpoint) as proxy:
        proxy.hang(DESCRIBE)
        run = _deploy(server, tmp_path, proxy)
        proxy.wait_seen(DESCRIBE)  # the CLI is waiting for the answer now
        code, took = _interrupt(run, signum)
    assert code == 130, run.stderr
    assert took < 2
    finished = run.named("run.finished")[0]
    assert (finished["outcome"], finished["exit_code"]) == ("interrupted", 130)
    assert finished["error"] == f"stopped by {signum.name}"
    assert run.named("state.failed") == []
    record = Records(make, "qa", state_dir=tmp_path / "state").lock()
    assert record is not None and (record["status"], record["state"]) == ("interrupted", "inspect")
    assert capacities(make, ["qa-b"])["qa-b"]["desired"] == 0


def test_a_signal_during_botocore_retries_exits_130_and_saves_the_record_in_s3(
        server, make, tmp_path):
    """Every DescribeAutoScalingGroups answered 500 (botocore retries with back-off): SIGINT
    after the first retry ends the run in < 2 s, exit 130, the S3 record says interrupted."""
    build_env(make, "qa", active="a", active_count=2, bucket=BUCKET)
    with FaultProxy(server.endpoint) as proxy:
        proxy.fail(DESCRIBE)
        run = _deploy(server, tmp_path, proxy, "--lock-bucket-name", BUCKET)
        proxy.wait_seen(DESCRIBE, 2)  # botocore is retrying
        code, took = _interrupt(run, signal.SIGINT)
        attempts = proxy.seen(DESCRIBE)
    assert code == 130, run.stderr
    assert took < 2
    assert attempts < 9  # it did not sit out botocore's 9 attempts
    finished = run.named("run.finished")[0]
    assert (finished["outcome"], finished["error"]) == ("interrupted", "stopped by SIGINT")
    record = Records(make, "qa", bucket=BUCKET).lock()
    assert record is not None and (record["status"], record["state"]) == ("interrupted", "inspect")
