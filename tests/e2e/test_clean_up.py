"""--clean-up end to end: both ASGs populated, the one serving fewer is emptied and refilled."""

from __future__ import annotations

from typing import Any

from tests.support.aws_env import build_env, capacities, elb_states, instance_ids


def both_populated(make: Any, *, broken: str) -> dict[str, list[str]]:
    """qa-a and qa-b with 4 instances each in qa-public; `broken`'s instances are stopped, so
    it serves 0 healthy instances in the load balancer."""
    build_env(make, "qa", active="a", active_count=4)
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=4)
    ids = {name: instance_ids(make, name) for name in ("qa-a", "qa-b")}
    make("ec2").stop_instances(InstanceIds=ids[broken])
    return ids


def test_clean_up_empties_the_asg_serving_fewer_then_deploys_into_it(cli, make, server):
    """qa-b serves 0 of 4: it is zeroed and waited empty, refilled with 4 new healthy
    instances, and qa-a (serving 4) is drained; exit 0."""
    before = both_populated(make, broken="qa-b")
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "4",
                 "--clean-up", "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr
    [decided] = result.named("inspect.decided")
    assert (decided["active"], decided["target"], decided["empty_first"]) == ("qa-a", "qa-b", "qa-b")
    assert decided["serving"] == {"qa-a": 4, "qa-b": 0}
    assert [t[:2] for t in result.transitions[:3]] == [
        ("locked", "inspect"), ("inspect", "empty"), ("empty", "scale")]
    caps = capacities(make, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-a"]["instances"]) == (0, 0)
    assert (caps["qa-b"]["desired"], caps["qa-b"]["instances"]) == (4, 4)
    new = instance_ids(make, "qa-b")
    assert not set(new) & set(before["qa-b"])
    states = elb_states(make, "qa-public")
    assert all(states[i] == "InService" for i in new)


def test_clean_up_without_the_flag_refuses_and_changes_nothing(cli, make, server):
    """The same environment without --clean-up: exit 3, both ASGs untouched."""
    both_populated(make, broken="qa-b")
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public", "--instance-count", "4")
    assert result.returncode == 3
    assert "--clean-up" in result.stderr
    assert [c for c in server.mutating_calls() if c["service"] == "autoscaling"] == []
    caps = capacities(make, ["qa-a", "qa-b"])
    assert caps["qa-a"]["desired"] == caps["qa-b"]["desired"] == 4
