"""The dry-run plan lists exactly the mutating AWS calls the real run makes (issue 8 #19),
and a spec without a wait for the load balancers does not claim to wait for them (#13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm import runner
from abfsm.aws.autoscaling import describe_update
from abfsm.context import Settings
from tests.support.aws_env import build_env

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **flags: Any) -> Settings:
    return Settings(environment="qa", state_dir=str(tmp_path / "state"), **flags)


def _asg_lines(events: list[dict[str, Any]]) -> list[str]:
    return [describe_update(e["params"]) for e in events
            if e["event"] == "aws.call" and e["action"] == "UpdateAutoScalingGroup"]


@pytest.mark.parametrize("flags", [
    {"instance_count": 12, "instance_count_step": 5},  # MaxSize 10 raised, on every step
    {"instance_count": 4, "instance_count_step": 1, "single_asg": True},  # MinSize 2, emptied
], ids=["max-size", "min-size"])
def test_dry_run_lists_the_update_calls_the_run_makes(aws, services, clock, tmp_path, flags):
    """The plan's UpdateAutoScalingGroup lines are, in order, the calls the real deployment
    then makes (MaxSize on later steps and the MinSize change included)."""
    target_min = 2 if flags.get("single_asg") else 0
    if target_min:
        build_env(aws, "qa", active="a", single=True, active_count=2, active_min=target_min)
    else:
        build_env(aws, "qa", active="a", active_count=4)
    with capture_logs() as planned:
        dry = runner.deploy(_settings(tmp_path, dry_run=True, **flags), services=services,
                            clock=clock)
    assert dry.exit_code == 0
    (plan,) = [e for e in planned if e["event"] == "plan"]
    with capture_logs() as real:
        done = runner.deploy(_settings(tmp_path, **flags), services=services, clock=clock)
    assert done.exit_code == 0, done.message
    made = _asg_lines(real)
    assert made and [c for c in plan["calls"] if c.startswith("autoscaling")] == made
    if target_min:
        assert [e for e in planned if e["event"] == "inspect.min_size"]
        assert made[1:3] == ["autoscaling UpdateAutoScalingGroup qa DesiredCapacity=1 MinSize=1",
                             "autoscaling UpdateAutoScalingGroup qa DesiredCapacity=2 MinSize=2"]
        group = aws("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=["qa"])["AutoScalingGroups"][0]
        assert group["MinSize"] == target_min  # restored once the steps reached it


def test_a_spec_without_a_load_balancer_wait_does_not_claim_one(aws, services, clock, tmp_path):
    """With examples/specs/no-elb-wait.yaml, inspect says the discovered ELB is not waited for
    (before: "(discovered)", as if wait-elb would wait for it)."""
    build_env(aws, "qa", active="a", active_count=2)
    spec = str(ROOT / "examples" / "specs" / "no-elb-wait.yaml")
    with capture_logs() as events:
        outcome = runner.deploy(_settings(tmp_path, dry_run=True, instance_count=2, spec=spec),
                                services=services, clock=clock)
    assert outcome.exit_code == 0
    (decided,) = [e for e in events if e["event"] == "inspect.decided"]
    assert decided["load_balancers"] == ["qa-public"]
    assert decided["lb_source"].startswith("not waited for: no state of")
    (plan,) = [e for e in events if e["event"] == "plan"]
    assert any(line.startswith("wait for      qa-public (not waited for") for line in plan["lines"])
