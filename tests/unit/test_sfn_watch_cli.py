"""`abfsm sfn status` / `sfn watch` and `sfn start --notify`: what is refused before any AWS
call (exit 2, one line naming why)."""

from __future__ import annotations

import pytest

from abfsm.cli import main

DEAD = ["--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"]
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:abfsm"
START = ["sfn", "start", "--state-machine-arn", SM, "--environment", "qa",
         "--lock-bucket-name", "locks", "--no-elb-check", *DEAD]


@pytest.mark.parametrize("verb", ["status", "watch"])
@pytest.mark.parametrize("arn", ["arn:aws:states:us-east-1:123456789012:stateMachine:abfsm",
                                 "20261201T000000Z-abcdef", "arn:aws:states:us-east-1:1:execution:a:b"])
def test_a_malformed_execution_arn_exits_2(verb, arn, capsys):
    """A state machine ARN, a bare run id, a short account: exit 2 naming the flag."""
    assert main(["sfn", verb, "--execution-arn", arn, *DEAD]) == 2
    assert "is not an execution ARN" in capsys.readouterr().err


def test_notify_without_wait_is_refused(capsys):
    """`sfn start --notify` without --wait: exit 2, saying that nothing would follow it."""
    assert main([*START, "--notify", "webhook:http://127.0.0.1:9/hook"]) == 2
    err = capsys.readouterr().err
    assert "--notify needs --wait" in err and "sfn watch" in err


def test_watch_refuses_a_bad_notify_sink(capsys):
    """`sfn watch --notify nonsense`: exit 2 before any AWS call."""
    arn = "arn:aws:states:us-east-1:123456789012:execution:abfsm:run-1"
    assert main(["sfn", "watch", "--execution-arn", arn, "--notify", "nonsense", *DEAD]) == 2
    assert "nonsense" in capsys.readouterr().err
