"""The standard A/B deployment, end to end: CLI subprocess against moto_server."""

from __future__ import annotations

from tests.support.aws_env import build_env, capacities, elb_states, instance_ids


def test_standard_deployment_moves_traffic_to_the_empty_asg(cli, make, server):
    """qa-a serving 4 -> qa-b gets 4 healthy in the ELB, qa-a drained, lock released, exit 0."""
    env = build_env(make, "qa", active="a", active_count=4)
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public",
                 "--instance-count", "4", "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr + result.stdout
    caps = capacities(make, env["asgs"])
    assert caps["qa-a"]["desired"] == 0 and caps["qa-a"]["instances"] == 0
    assert caps["qa-b"]["desired"] == 4 and caps["qa-b"]["instances"] == 4
    states = elb_states(make, "qa-public")
    assert set(instance_ids(make, "qa-b")) <= set(states)
    assert result.transitions[0] == ("locked", "inspect", "acquired")
    assert result.transitions[-1] == ("drain", "done", "drained")
    assert result.finished["exit_code"] == 0
