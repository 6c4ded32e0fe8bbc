"""`abfsm sfn watch` end to end: the CLI in a subprocess follows an execution running inside
the emulator's moto_server, a real SIGINT stops following only, and the command it prints
picks the execution up again to its end, every line valid against the log schema."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from typing import Any

from abfsm.log_schema import validate
from tests.e2e.conftest import cli_env
from tests.support.aws_env import build_env
from tests.support.sfn_moto import BUCKET, ROLE


def test_sigint_stops_following_and_the_printed_command_follows_to_the_end(cli, make, server,
                                                                          tmp_path):
    """Instances never boot (frozen world): SIGINT after the first move exits 130 with the
    execution RUNNING and a last line naming `abfsm sfn watch --execution-arn ARN`; running that
    command follows it to FAILED in wait-instances, exit 1, each JSON line valid."""
    server.world(enabled=True)
    try:
        build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
        machine = cli("sfn", "deploy", "--name", "abfsm", "--role-arn", ROLE).stdout.strip()
        started = cli("sfn", "start", "--state-machine-arn", machine, "--environment", "qa",
                      "--lock-bucket-name", BUCKET, "--instance-count", "2", "--no-elb-check",
                      "--update-timeout", "1", "--health-check-timeout", "6")
        execution = started.stdout.strip()
        watch = subprocess.Popen(
            [sys.executable, "-m", "abfsm", "sfn", "watch", "--execution-arn", execution,
             "--log-format", "json"], cwd=tmp_path, env=cli_env(server), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert watch.stdout is not None
        for line in watch.stdout:
            if json.loads(line)["event"] == "transition":
                break
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=60)
        status = make("stepfunctions").describe_execution(executionArn=execution)["status"]
        assert watch.returncode == 130 and status == "RUNNING"
        last = err.rstrip().splitlines()[-1]
        command = last.split("follow it again with: ", 1)[1]
        assert command == f"abfsm sfn watch --execution-arn {execution}"
        again = cli(*shlex.split(command)[1:], "--log-format", "json", timeout=120)
        events = [json.loads(line) for line in again.stdout.splitlines()]
        assert again.returncode == 1 and [validate(e) for e in events] == [[]] * len(events)
        end: dict[str, Any] = events[-1]
        assert (end["event"], end["failed_state"], end["exit_code"]) == ("run.finished",
                                                                         "wait-instances", 1)
    finally:
        server.world(enabled=False)
