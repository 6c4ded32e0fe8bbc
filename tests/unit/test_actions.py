"""The action declaration: outcomes, params, AWS calls and doc of every built-in action."""

from __future__ import annotations

import pytest

from abfsm.actions import ACTIONS, AwsCall, Param, action
from abfsm.context import Settings


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_is_documented(name: str) -> None:
    """Every built-in action has a one-line doc (the README table prints it)."""
    assert ACTIONS[name].doc and "\n" not in ACTIONS[name].doc


def test_calls_may_depend_on_a_flag() -> None:
    """A callable `calls` declaration answers per settings: wait-elb reads no load balancer
    with --no-elb-check, and only classic ELB health when only --elb-name is given."""
    wait_elb = ACTIONS["wait_elb"]
    assert wait_elb.aws_calls(Settings("qa", no_elb_check=True)) == ()
    apis = {c.api for c in wait_elb.aws_calls(Settings("qa", elb_names=["web"]))}
    assert "DescribeInstanceHealth" in apis and "DescribeTargetHealth" not in apis


def test_mutating_calls_are_declared() -> None:
    """scale, drain, empty and rollback declare their UpdateAutoScalingGroup as mutating."""
    for name in ("scale_step", "drain", "empty_target", "rollback"):
        calls = ACTIONS[name].aws_calls(Settings("qa"))
        assert AwsCall("autoscaling", "UpdateAutoScalingGroup", True, calls[0].resource) in calls


def test_decorator_keeps_the_declaration() -> None:
    """`action()` keeps outcomes, params, calls and doc on the Action it builds."""
    @action({"passed"}, params={"n": Param("int", default=1, doc="how many")},
            calls=[AwsCall("ec2", "DescribeInstances")], doc="a test action")
    def probe(run: object) -> str:
        return "passed"

    assert probe.name == "probe" and probe.outcomes == {"passed"}
    assert probe.params["n"].default == 1 and probe.doc == "a test action"
    assert probe.aws_calls(Settings("qa")) == (AwsCall("ec2", "DescribeInstances"),)
