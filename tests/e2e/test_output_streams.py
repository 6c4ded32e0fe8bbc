"""Output that goes away under a real deployment (`abfsm deploy ... | head -3`, `2>&1 | head`,
a full disk): the run goes on to its end, AWS and the record tell the outcome, the exit code
is the run's, and nothing is left on stderr about a broken pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ROOT, MotoServer, cli_env
from tests.support.aws_env import build_env, capacities, instance_ids
from tests.support.fault_proxy import FaultProxy

DEPLOY = ["deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
          "--instance-count", "4", "--instance-count-step", "2", "--update-timeout", "0.1"]


def abfsm(*args: str, state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "abfsm", *args, "--state-dir", str(state_dir)]


def buffered_env(server: MotoServer, **extra: str) -> dict[str, str]:
    """The CLI's environment with Python's usual buffered stdout (a pipe is block-buffered:
    what a failed write leaves in the buffer is flushed again at exit)."""
    env = {**cli_env(server), **extra}
    env.pop("PYTHONUNBUFFERED", None)
    return env


def closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


def head(argv: list[str], env: dict[str, str], *, lines: int, hold: Any = None,
         stderr_too: bool = False) -> tuple[int, list[str], str]:
    """Run argv, read `lines` lines of its stdout, close the pipe, let it finish.

    `hold` is a threading.Event set once the pipe is closed (a FaultProxy hook waits for it,
    so the run is certainly still writing after the reader went away). Returns
    (exit code, the lines read, stderr).
    """
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if stderr_too else subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    got = [proc.stdout.readline() for _ in range(lines)]
    proc.stdout.close()
    if hold is not None:
        hold.set()
    err = ""
    if proc.stderr is not None:
        err = proc.stderr.read()
        proc.stderr.close()
    return proc.wait(timeout=120), got, err


def lock_and_record(make: Any, run_id: str | None = None) -> tuple[bool, dict[str, Any]]:
    """(whether qa.lock exists, the one archived run record under qa/runs/)."""
    s3 = make("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="qa-locks").get("Contents", [])]
    runs = [k for k in keys if k.startswith("qa/runs/")]
    assert len(runs) == 1, keys
    record = json.loads(s3.get_object(Bucket="qa-locks", Key=runs[0])["Body"].read())
    return "qa.lock" in keys, record


def test_stdout_closed_after_three_lines_the_deployment_still_completes(
        server: MotoServer, make: Any, tmp_path: Path) -> None:
    """`| head -3` mid-run: exit 0, old ASG drained, new one full, lock released, record done."""
    build_env(make, "qa", active="a", active_count=2, bucket="qa-locks")
    closed = threading.Event()
    with FaultProxy(server.endpoint) as proxy:
        proxy.before("DescribeInstanceHealth", lambda: closed.wait(60))  # wait-elb starts after
        env = buffered_env(server, AWS_ENDPOINT_URL=proxy.endpoint)
        code, got, err = head(abfsm(*DEPLOY, "--log-format", "console", state_dir=tmp_path),
                              env, lines=3, hold=closed)
    assert proxy.fired == ["DescribeInstanceHealth"]
    assert got[0].startswith("abfsm deploy qa · run ")
    assert (code, err) == (0, "")
    caps = capacities(make, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-a"]["min"], caps["qa-a"]["instances"]) == (0, 0, 0)
    assert (caps["qa-b"]["desired"], caps["qa-b"]["instances"]) == (4, 4)
    held, record = lock_and_record(make)
    assert not held and (record["status"], record["exit_code"]) == ("done", 0)


def test_stdout_and_stderr_closed_a_failing_run_still_ends_failed(
        server: MotoServer, make: Any, tmp_path: Path) -> None:
    """`2>&1 | head -3` and wait-elb failing: exit 1, lock kept as failed, old ASG untouched."""
    build_env(make, "qa", active="a", active_count=2, bucket="qa-locks")
    closed = threading.Event()

    def stop_new_instances() -> None:
        closed.wait(60)
        make("ec2").stop_instances(InstanceIds=instance_ids(make, "qa-b"))

    with FaultProxy(server.endpoint) as proxy:
        proxy.before("DescribeInstanceHealth", stop_new_instances)
        env = buffered_env(server, AWS_ENDPOINT_URL=proxy.endpoint, ABFSM_VIRTUAL_CLOCK="1")
        code, got, _ = head(abfsm(*DEPLOY, "--health-check-timeout", "60",
                                  "--log-format", "json", state_dir=tmp_path),
                            env, lines=3, hold=closed, stderr_too=True)
    assert [json.loads(line)["event"] for line in got] == ["run.started", "aws.call", "lock.acquired"]
    assert code == 1
    lock = json.loads(make("s3").get_object(Bucket="qa-locks", Key="qa.lock")["Body"].read())
    assert (lock["status"], lock["failed_state"]) == ("failed", "wait-elb")
    assert capacities(make, ["qa-a"])["qa-a"]["desired"] == 2  # the old ASG still serves


def test_a_full_disk_under_stdout_never_stops_the_run(server: MotoServer, make: Any,
                                                      tmp_path: Path) -> None:
    """stdout on /dev/full (every write ENOSPC): exit 0, the deployment done, stderr empty."""
    build_env(make, "qa", active="a", active_count=2, bucket="qa-locks")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(abfsm(*DEPLOY, "--log-format", "json", state_dir=tmp_path),
                              cwd=ROOT, env=buffered_env(server), stdout=full,
                              stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert capacities(make, ["qa-b"])["qa-b"]["instances"] == 4
    held, record = lock_and_record(make)
    assert not held and record["status"] == "done"


def test_status_into_a_closed_pipe_exits_quietly(server: MotoServer, make: Any,
                                                 tmp_path: Path) -> None:
    """`abfsm status | head -0`: exit 0 and no BrokenPipeError on stderr."""
    make("s3").create_bucket(Bucket="qa-locks")
    write_end = closed_pipe()
    try:
        proc = subprocess.run(abfsm("status", "--environment", "qa", "--lock-bucket-name",
                                    "qa-locks", state_dir=tmp_path),
                              cwd=ROOT, env=buffered_env(server), stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_with_both_streams_gone_the_exit_code_is_still_the_runs(server: MotoServer, make: Any,
                                                                tmp_path: Path) -> None:
    """stdout and stderr closed from the start, a refused run: exit 3, not a crash's 1 or 120."""
    build_env(make, "qa", active="a", active_count=2, bucket="qa-locks")
    make("autoscaling").set_desired_capacity(AutoScalingGroupName="qa-b", DesiredCapacity=2)
    write_end = closed_pipe()
    try:
        proc = subprocess.run(abfsm(*DEPLOY, "--log-format", "json", state_dir=tmp_path),
                              cwd=ROOT, env=buffered_env(server), stdout=write_end,
                              stderr=write_end, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 3
    _, record = lock_and_record(make)
    assert record["status"] == "refused"
