"""Alarm gates against in-process moto CloudWatch: inspect's one check, one DescribeAlarms
per poll during a wait, and the failure naming the alarm and its StateReason."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm.actions.alarms import check_before_deploy
from abfsm.actions.waiting import Progress, hold_for, wait_until
from abfsm.errors import EXIT_REFUSED, AlarmFired, Refused
from tests.support.gates import gate_run, put_alarm


def describe_alarms(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "aws.read" and e["action"] == "DescribeAlarms"]


def never_ready() -> Progress:
    return Progress(ready=0, total=1, done=False, summary="0/1 ready")


def test_inspect_check_refuses_a_missing_alarm_with_one_call(tmp_path, clock, aws, services):
    """A --alarm that does not exist is refused (exit 3), named, after exactly one call."""
    put_alarm(aws, "qa-5xx")
    run = gate_run(tmp_path, clock, "inspect", aws=services, alarms=["qa-5xx", "qa-latency"])
    with capture_logs() as logs, pytest.raises(Refused) as caught:
        check_before_deploy(run)
    assert caught.value.exit_code == EXIT_REFUSED
    assert "CloudWatch alarm qa-latency not found" in str(caught.value)
    assert len(describe_alarms(logs)) == 1


def test_inspect_check_refuses_an_alarm_already_in_alarm(tmp_path, clock, aws, services):
    """An alarm already in ALARM is refused before anything changes, with its StateReason."""
    put_alarm(aws, "qa-5xx", "ALARM", "Threshold Crossed: 1 datapoint [42.0] > 10.0")
    run = gate_run(tmp_path, clock, "inspect", aws=services, alarms=["qa-5xx"])
    with pytest.raises(Refused, match=r"alarm qa-5xx is in ALARM: Threshold Crossed: 1 datapoint"):
        check_before_deploy(run)


def test_inspect_check_refuses_a_prefix_matching_no_alarm(tmp_path, clock, aws, services):
    """--alarm-prefix that matches no alarm is refused: the gate would watch nothing."""
    put_alarm(aws, "qa-5xx")
    run = gate_run(tmp_path, clock, "inspect", aws=services, alarm_prefix="prod-")
    with pytest.raises(Refused, match="no CloudWatch alarm starts with 'prod-'"):
        check_before_deploy(run)


def test_inspect_check_passes_and_logs_the_alarms(tmp_path, clock, aws, services):
    """Existing alarms that are OK pass; alarms.checked names each with its state."""
    put_alarm(aws, "qa-5xx")
    put_alarm(aws, "qa-latency", "INSUFFICIENT_DATA")
    run = gate_run(tmp_path, clock, "inspect", aws=services, alarms=["qa-5xx", "qa-latency"])
    with capture_logs() as logs:
        check_before_deploy(run)
    checked = [e for e in logs if e["event"] == "alarms.checked"]
    assert checked[0]["states"] == {"qa-5xx": "OK", "qa-latency": "INSUFFICIENT_DATA"}


def test_alarm_in_alarm_during_a_wait_fails_naming_alarm_and_reason(tmp_path, clock, aws, services):
    """An alarm going into ALARM at the third poll fails the state there with its StateReason."""
    put_alarm(aws, "qa-5xx")
    run = gate_run(tmp_path, clock, "wait-elb", aws=services, alarms=["qa-5xx"], update_timeout=30)
    sleeps = []

    def fire_after_two_sleeps() -> None:
        sleeps.append(1)
        if len(sleeps) == 2:
            aws("cloudwatch").set_alarm_state(AlarmName="qa-5xx", StateValue="ALARM",
                                              StateReason="Threshold Crossed: 5xx > 10")

    clock.on_sleep(fire_after_two_sleeps)
    with capture_logs() as logs, pytest.raises(AlarmFired) as caught:
        wait_until(run, never_ready, alarms=True)
    assert str(caught.value) == ("wait-elb: alarm qa-5xx is in ALARM: "
                                 "Threshold Crossed: 5xx > 10")
    assert len(describe_alarms(logs)) == 3  # one per poll
    fired = [e for e in logs if e["event"] == "alarm.fired"]
    assert (fired[0]["alarm"], fired[0]["reason"]) == ("qa-5xx", "Threshold Crossed: 5xx > 10")


def test_one_describe_alarms_per_poll_for_all_named_alarms(tmp_path, clock, aws, services):
    """Three named alarms over a 90 s wait at 30 s: four polls, four DescribeAlarms calls."""
    for name in ("qa-a1", "qa-a2", "qa-a3"):
        put_alarm(aws, name)
    run = gate_run(tmp_path, clock, "bake", aws=services, alarms=["qa-a1", "qa-a2", "qa-a3"],
                   update_timeout=30)
    ok = Progress(ready=1, total=1, done=True, summary="1/1")
    with capture_logs() as logs:
        hold_for(run, 90, lambda: ok)
    polls = [e for e in logs if e["event"] == "wait.progress"]
    assert len(polls) == 4 and len(describe_alarms(logs)) == 4
    assert describe_alarms(logs)[0]["params"]["AlarmNames"] == ["qa-a1", "qa-a2", "qa-a3"]


def test_names_and_a_prefix_are_two_calls_per_poll(tmp_path, clock, aws, services):
    """A prefix is its own alarm set: names + prefix cost two DescribeAlarms per poll."""
    put_alarm(aws, "qa-5xx")
    put_alarm(aws, "web-latency")
    run = gate_run(tmp_path, clock, "bake", aws=services, alarms=["qa-5xx"], alarm_prefix="web-")
    ok = Progress(ready=1, total=1, done=True, summary="1/1")
    with capture_logs() as logs:
        hold_for(run, 30, lambda: ok)
    assert len([e for e in logs if e["event"] == "wait.progress"]) == 2
    assert len(describe_alarms(logs)) == 4


def test_a_state_param_adds_alarms_to_the_watch(tmp_path, clock, aws, services):
    """`params: {alarms: [...]}` on bake watches those alarms too, in the same one call."""
    put_alarm(aws, "qa-5xx")
    put_alarm(aws, "qa-orders", "ALARM", "orders dropped")
    run = gate_run(tmp_path, clock, "bake", aws=services, alarms=["qa-5xx"],
                   params={"seconds": 60, "alarms": ["qa-orders"]})
    ok = Progress(ready=1, total=1, done=True, summary="1/1")
    with capture_logs() as logs, pytest.raises(AlarmFired, match="alarm qa-orders is in ALARM: orders dropped"):
        hold_for(run, 60, lambda: ok)
    assert describe_alarms(logs)[0]["params"]["AlarmNames"] == ["qa-5xx", "qa-orders"]


def test_without_alarms_no_cloudwatch_call_is_made(tmp_path, clock):
    """No --alarm: the wait never touches CloudWatch (aws=None would raise)."""
    run = gate_run(tmp_path, clock, "wait-elb", aws=None)
    ok = Progress(ready=1, total=1, done=True, summary="1/1")
    assert wait_until(run, lambda: ok, alarms=True) is ok
