"""The dry-run plan of a deployment that sets a launch template version lists the mutating
calls the real run then makes, in order (in process, against moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm import runner
from abfsm.aws.autoscaling import describe_update
from abfsm.context import Settings
from tests.support.aws_env import AMI, build_env


def _settings(tmp_path: Path, **flags: Any) -> Settings:
    return Settings(environment="qa", state_dir=str(tmp_path / "state"), instance_count=2,
                    **flags)


def _made(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        if e["event"] != "aws.call":
            continue
        if e["action"] == "UpdateAutoScalingGroup":
            out.append(describe_update(e["params"]))
        elif e["service"] != "s3":
            out.append(f"{e['service']} {e['action']} {e['params'].get('AutoScalingGroupName', '')}"
                       .strip())
    return out


@pytest.mark.parametrize("flags", [
    {"launch_template_version": "$Latest"},
    {"launch_template_version": "1", "resume_processes": True},
], ids=["version", "version-and-processes"])
def test_dry_run_lists_the_version_and_process_calls_the_run_makes(aws, services, clock,
                                                                   tmp_path, flags):
    """The plan's autoscaling lines (the launch template set, ResumeProcesses /
    SuspendProcesses, each capacity update) are, in order, what the real run calls."""
    build_env(aws, "qa", active="a", active_count=2)
    aws("ec2").create_launch_template_version(LaunchTemplateName="qa-lt", SourceVersion="1",
                                              LaunchTemplateData={"ImageId": AMI})
    if flags.get("resume_processes"):
        aws("autoscaling").suspend_processes(AutoScalingGroupName="qa-b",
                                             ScalingProcesses=["Launch"])
        aws("autoscaling").suspend_processes(AutoScalingGroupName="qa-a",
                                             ScalingProcesses=["Terminate"])
    with capture_logs() as planned:
        assert runner.deploy(_settings(tmp_path, dry_run=True, **flags), services=services,
                             clock=clock).exit_code == 0
    (plan,) = [e for e in planned if e["event"] == "plan"]
    with capture_logs() as real:
        done = runner.deploy(_settings(tmp_path, **flags), services=services, clock=clock)
    assert done.exit_code == 0, done.message
    shown = [" ".join(c.split()[:3]) if "Processes" in c else c
             for c in plan["calls"] if c.startswith("autoscaling")]
    assert shown == _made(real)
    assert any("LaunchTemplate=" in c for c in shown)
