"""End-to-end fixtures: a real moto_server subprocess on 127.0.0.1 and a CLI runner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws_env import REGION, client_factory

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset",
                                                      method="POST"), timeout=10).read()
        self.reset_calls()

    def reset_calls(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/_abfsm/calls/reset",
                                                      method="POST"), timeout=10).read()

    def calls(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.endpoint}/_abfsm/calls", timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def mutating_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["mutating"]]

    def world(self, **change: Any) -> dict[str, Any]:
        """POST /_abfsm/world: switch the emulator's world model, move its clock, etc."""
        request = urllib.request.Request(f"{self.endpoint}/_abfsm/world", method="POST",
                                         data=json.dumps(change).encode())
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    port = _free_port()
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/support/moto_server.py"), str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/_abfsm/calls", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                errors.seek(0)
                err = errors.read().decode(errors="replace")
                raise RuntimeError(f"moto_server did not start: {err}") from None
            time.sleep(0.05)
    server = MotoServer(endpoint, proc)
    yield server
    proc.terminate()
    proc.wait(timeout=10)
    errors.close()


@pytest.fixture
def server(moto_server: MotoServer) -> MotoServer:
    """The session's moto_server, reset to empty for this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def make(server: MotoServer) -> Any:
    """boto3 client factory against the moto_server."""
    return client_factory(server.endpoint)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    @property
    def transitions(self) -> list[tuple[str, str, str]]:
        return [(e["src"], e["dst"], e["trigger"]) for e in self.named("transition")]

    @property
    def finished(self) -> dict[str, Any]:
        return self.named("run.finished")[-1]


def cli_env(server: MotoServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": server.endpoint, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture
def cli(server: MotoServer, tmp_path: Path) -> Any:
    """Run `python -m abfsm ARGS` (JSON logs, state dir in tmp_path); returns CliResult.

    `extra_env` adds or overrides environment variables of the subprocess, e.g.
    {"ABFSM_VIRTUAL_CLOCK": "1"} or {"AWS_ENDPOINT_URL": proxy.endpoint}.
    """

    def run(*args: str, timeout: float = 120, json_logs: bool = True,
            extra_env: dict[str, str] | None = None) -> CliResult:
        argv = [sys.executable, "-m", "abfsm", *args]
        if json_logs and args and args[0] in ("deploy", "resume"):
            argv += ["--log-format", "json"]
        if args and args[0] in ("deploy", "resume", "status", "unlock") and "--state-dir" not in args:
            argv += ["--state-dir", str(tmp_path / "state")]
        env = {**cli_env(server), **(extra_env or {})}
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=timeout)
        events = []
        logs = bool(args) and args[0] in ("deploy", "resume", "demo")  # not status's JSON
        for line in proc.stdout.splitlines() if logs else []:
            if line.startswith("{"):
                events.append(json.loads(line))
        return CliResult(proc.returncode, proc.stdout, proc.stderr, events)

    return run


@pytest.fixture
def deploy_broken(cli: Any, make: Any, server: MotoServer) -> Any:
    """`abfsm deploy ARGS` whose new instances (ASG `asg`) are stopped just before the first
    `health_call` reaches moto, so they are OutOfService / unhealthy from wait-elb's first
    poll on. moto launches instances healthy and the CLI goes straight on, so a proxy in front
    of moto_server is what makes that moment deterministic. The virtual clock runs the wait's
    timeout in no real time. Returns (CliResult, stopped instance ids)."""
    from tests.support.aws_env import instance_ids
    from tests.support.fault_proxy import FaultProxy

    def run(*args: str, asg: str = "qa-b", health_call: str = "DescribeInstanceHealth",
            **kwargs: Any) -> tuple[CliResult, list[str]]:
        stopped: list[str] = []

        def stop_new_instances() -> None:
            stopped.extend(instance_ids(make, asg))
            make("ec2").stop_instances(InstanceIds=stopped)

        with FaultProxy(server.endpoint) as proxy:
            proxy.before(health_call, stop_new_instances)
            result = cli(*args, extra_env={"ABFSM_VIRTUAL_CLOCK": "1",
                                           "AWS_ENDPOINT_URL": proxy.endpoint}, **kwargs)
        assert proxy.fired == [health_call], "the CLI never reached the health check"
        return result, stopped

    return run
