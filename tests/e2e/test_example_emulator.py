"""examples/emulator.py is the embedded emulator: moto with abfsm's corrections, so two ASGs
sharing one classic ELB keep each other's instances registered there, as on AWS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws_env import client_factory, elb_states, instance_ids

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example_emulator(tmp_path: Path) -> Iterator[str]:
    """examples/emulator.py running for env qa; yields its endpoint."""
    endpoint_file = tmp_path / "endpoint"
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples/emulator.py"), str(endpoint_file),
                             "qa"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (endpoint_file.exists() and endpoint_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.1)
        yield endpoint_file.read_text().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _cli(endpoint: str, cwd: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "example", "AWS_SECRET_ACCESS_KEY": "example",
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    return subprocess.run([sys.executable, "-m", "abfsm", *args, "--log-format", "json"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_clean_up_against_the_example_emulator_keeps_the_serving_asg(example_emulator, tmp_path):
    """qa-a serves 4, qa-b was half-scaled to 2: --clean-up counts both as serving, zeroes
    qa-b (not qa-a), deploys into it, and only then drains qa-a."""
    import json

    make = client_factory(example_emulator)
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=2)
    result = _cli(example_emulator, tmp_path, "deploy", "--environment", "qa", "--elb-name",
                  "qa-public", "--instance-count", "4", "--clean-up", "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    [decided] = [e for e in events if e["event"] == "inspect.decided"]
    assert decided["serving"] == {"qa-a": 4, "qa-b": 2}
    assert (decided["active"], decided["target"], decided["empty_first"]) == ("qa-a", "qa-b", "qa-b")
    new = instance_ids(make, "qa-b")
    assert len(new) == 4 and elb_states(make, "qa-public") == {i: "InService" for i in new}
