"""Each correction in abfsm/emulator/fixes.py is in force, and plain moto behaves differently."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from abfsm.emulator import fixes as moto_fixes
from tests.support.aws_env import build_env, capacities, elb_states, instance_ids


def _asg_backend() -> type:
    from moto.autoscaling.models import AutoScalingBackend

    return AutoScalingBackend


def _error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


# 1. MinSize / MaxSize

@pytest.mark.parametrize(("desired", "message"), [
    (0, "Desired capacity:0 must be between the specified min size:2 and max size:10"),
    (11, "Desired capacity:11 must be between the specified min size:2 and max size:10"),
])
def test_update_outside_min_max_is_a_validation_error(aws, desired, message):
    """UpdateAutoScalingGroup with DesiredCapacity outside [MinSize, MaxSize] is refused."""
    build_env(aws, "qa", active="a", active_count=4, active_min=2, max_size=10)
    with pytest.raises(ClientError) as caught:
        aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-a",
                                                     DesiredCapacity=desired)
    assert (_error_code(caught.value), caught.value.response["Error"]["Message"]) == (
        "ValidationError", message)
    assert capacities(aws, ["qa-a"])["qa-a"]["desired"] == 4


def test_update_with_min_above_max_is_a_validation_error(aws):
    """UpdateAutoScalingGroup that would leave MinSize above MaxSize is refused."""
    build_env(aws, "qa", active="a", active_count=4, max_size=10)
    with pytest.raises(ClientError, match=r"MinSize \(11\) must be <= MaxSize \(10\)"):
        aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-a", MinSize=11)


@pytest.mark.parametrize(("desired", "message"), [
    (1, "New SetDesiredCapacity value 1 is below min value 2 for the AutoScalingGroup."),
    (11, "New SetDesiredCapacity value 11 is above max value 10 for the AutoScalingGroup."),
])
def test_set_desired_capacity_outside_min_max_is_a_validation_error(aws, desired, message):
    """SetDesiredCapacity outside [MinSize, MaxSize] is refused, as AWS does."""
    build_env(aws, "qa", active="a", active_count=4, active_min=2, max_size=10)
    with pytest.raises(ClientError) as caught:
        aws("autoscaling").set_desired_capacity(AutoScalingGroupName="qa-a",
                                                DesiredCapacity=desired)
    assert (_error_code(caught.value), caught.value.response["Error"]["Message"]) == (
        "ValidationError", message)
    assert capacities(aws, ["qa-a"])["qa-a"]["desired"] == 4


def test_update_inside_min_max_still_works(aws):
    """Moving MinSize together with DesiredCapacity (a correct drain) is accepted."""
    build_env(aws, "qa", active="a", active_count=4, active_min=2)
    aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-a", MinSize=0,
                                                 DesiredCapacity=0)
    assert capacities(aws, ["qa-a"])["qa-a"] == {"desired": 0, "min": 0, "max": 10,
                                                 "instances": 0}


def test_plain_moto_accepts_desired_below_min(aws):
    """Without the correction moto drains a MinSize 2 group to 0 (what AWS refuses)."""
    build_env(aws, "qa", active="a", active_count=4, active_min=2)
    backend = _asg_backend()
    with moto_fixes.unpatched((backend, "update_auto_scaling_group"),
                              (backend, "set_desired_capacity")):
        aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-a",
                                                     DesiredCapacity=0)
        aws("autoscaling").set_desired_capacity(AutoScalingGroupName="qa-b", DesiredCapacity=11)
    caps = capacities(aws, ["qa-a", "qa-b"])
    assert (caps["qa-a"]["desired"], caps["qa-a"]["min"]) == (0, 2)
    assert (caps["qa-b"]["desired"], caps["qa-b"]["max"]) == (11, 10)


# 2. Two ASGs on one classic ELB

def test_scaling_one_asg_keeps_the_other_registered(aws):
    """Scaling qa-b up leaves qa-a's instances registered and InService in the shared ELB."""
    build_env(aws, "qa", active="a", active_count=4)
    aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=3)
    a, b = instance_ids(aws, "qa-a"), instance_ids(aws, "qa-b")
    assert len(a) == 4 and len(b) == 3
    assert elb_states(aws, "qa-public") == {i: "InService" for i in a + b}


def test_draining_one_asg_removes_only_its_instances(aws):
    """Scaling qa-a to 0 deregisters qa-a's instances and keeps qa-b's."""
    build_env(aws, "qa", active="a", active_count=4)
    asg = aws("autoscaling")
    asg.update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=3)
    asg.update_auto_scaling_group(AutoScalingGroupName="qa-a", DesiredCapacity=0)
    assert elb_states(aws, "qa-public") == {i: "InService" for i in instance_ids(aws, "qa-b")}


def test_plain_moto_deregisters_the_other_asgs_instances(aws):
    """Without the correction, scaling qa-b up empties qa-a out of the shared ELB."""
    build_env(aws, "qa", active="a", active_count=4)
    with moto_fixes.unpatched((_asg_backend(), "update_attached_elbs")):
        aws("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b",
                                                     DesiredCapacity=3)
    assert set(elb_states(aws, "qa-public")) == set(instance_ids(aws, "qa-b"))


# 3. Atomic S3 conditional writes

class _Interleaving:
    """The worst interleaving of two racing `If-None-Match: *` writes, made deterministic.

    Each racer stops right after moto looks up the key for its precondition check and waits
    until the other racer has looked it up too (both saw "no object": plain moto lets both
    write) or is blocked on the fixture's S3 lock (the correction serialised them).
    """

    def __init__(self, racers: int) -> None:
        self._cond = threading.Condition()
        self._racers = racers
        self.checked = 0
        self.contended_seen = False
        self._seen: set[int] = set()
        self.stuck = False

    def install(self, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
        from moto.s3.models import S3Backend

        original = S3Backend.get_object
        gate = self

        def get_object(backend: Any, bucket_name: str, key_name: str, *args: Any,
                       **kwargs: Any) -> Any:
            found = original(backend, bucket_name, key_name, *args, **kwargs)
            if key_name == key and sys._getframe(1).f_code.co_name == "put_object":
                gate._checked_once()
            return found

        monkeypatch.setattr(S3Backend, "get_object", get_object)
        monkeypatch.setattr(moto_fixes, "_s3_lock", _ContentionLock(self))

    def contended(self) -> None:
        with self._cond:
            self.contended_seen = True
            self._cond.notify_all()

    def _checked_once(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if me in self._seen:
                return
            self._seen.add(me)
            self.checked += 1
            self._cond.notify_all()
            if not self._cond.wait_for(
                    lambda: self.checked >= self._racers or self.contended_seen, timeout=20):
                self.stuck = True


class _ContentionLock:
    """Stands in for moto_fixes._s3_lock and tells the interleaving when a writer must wait."""

    def __init__(self, gate: _Interleaving) -> None:
        self._lock = threading.Lock()
        self._gate = gate

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self._gate.contended()
            self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _race_two_creators(aws: Any) -> tuple[list[str], bytes]:
    s3 = aws("s3")
    s3.create_bucket(Bucket="locks")
    barrier = threading.Barrier(2)

    def create(body: str) -> str:
        barrier.wait(timeout=20)
        try:
            s3.put_object(Bucket="locks", Key="qa.lock", Body=body.encode(), IfNoneMatch="*")
        except ClientError as exc:
            return _error_code(exc)
        return "won"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(create, ["first", "second"]))
    return outcomes, s3.get_object(Bucket="locks", Key="qa.lock")["Body"].read()


def test_racing_conditional_puts_have_exactly_one_winner(aws, monkeypatch):
    """Two If-None-Match writers, both past their lookup at once: one wins, one gets 412."""
    gate = _Interleaving(racers=2)
    gate.install(monkeypatch, "qa.lock")
    outcomes, body = _race_two_creators(aws)
    assert (gate.stuck, gate.checked, gate.contended_seen) == (False, 2, True)
    assert sorted(outcomes) == ["PreconditionFailed", "won"]
    assert body == {"won": b"first", "PreconditionFailed": b"second"}[outcomes[0]]


def test_plain_moto_lets_both_racing_conditional_puts_win(aws, monkeypatch):
    """Without the correction the same interleaving lets both If-None-Match writers win."""
    from moto.s3.responses import S3Response

    gate = _Interleaving(racers=2)
    gate.install(monkeypatch, "qa.lock")
    with moto_fixes.unpatched((S3Response, "put_object")):
        outcomes, _ = _race_two_creators(aws)
    assert (gate.stuck, gate.checked, gate.contended_seen) == (False, 2, False)
    assert outcomes == ["won", "won"]


# 4. Classic ELB reason codes

def test_out_of_service_instance_has_a_reason(aws):
    """A stopped instance is OutOfService with ReasonCode Instance and AWS's description."""
    build_env(aws, "qa", active="a", active_count=2)
    stopped, running = instance_ids(aws, "qa-a")
    aws("ec2").stop_instances(InstanceIds=[stopped])
    states = {s["InstanceId"]: s for s in aws("elb").describe_instance_health(
        LoadBalancerName="qa-public")["InstanceStates"]}
    assert (states[stopped]["State"], states[stopped]["ReasonCode"],
            states[stopped]["Description"]) == ("OutOfService", "Instance",
                                                moto_fixes.OUT_OF_SERVICE_DESCRIPTION)
    assert (states[running]["State"], states[running]["ReasonCode"]) == ("InService", "N/A")


def test_plain_moto_gives_no_reason(aws):
    """Without the correction moto says N/A for an OutOfService instance."""
    from moto.elb.responses import ELBResponse

    build_env(aws, "qa", active="a", active_count=1)
    stopped = instance_ids(aws, "qa-a")[0]
    aws("ec2").stop_instances(InstanceIds=[stopped])
    with moto_fixes.unpatched((ELBResponse, "describe_instance_health")):
        [state] = aws("elb").describe_instance_health(
            LoadBalancerName="qa-public")["InstanceStates"]
    assert (state["State"], state["ReasonCode"]) == ("OutOfService", "N/A")


def test_unpatched_restores_the_correction(aws):
    """unpatched() puts the correction back when its block ends."""
    backend = _asg_backend()
    corrected, plain = backend.update_attached_elbs, moto_fixes.ORIGINALS[
        (backend, "update_attached_elbs")]
    with moto_fixes.unpatched((backend, "update_attached_elbs")):
        assert backend.update_attached_elbs is plain
    assert backend.update_attached_elbs is corrected is not plain


def test_an_executions_start_time_is_an_iso_timestamp_as_on_aws(sfn_make):
    """Correction 9: `$$.Execution.StartTime` read by a Pass state is AWS's ISO 8601 string
    in UTC with milliseconds, not a datetime."""
    import json
    import re
    import time

    sfn = sfn_make("stepfunctions")
    definition = {"StartAt": "t", "States": {"t": {
        "Type": "Pass", "Parameters": {"t.$": "$$.Execution.StartTime"}, "End": True}}}
    arn = sfn.create_state_machine(name="t", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    for _ in range(50):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        time.sleep(0.1)  # moto runs the execution in a thread: a few ms
    assert described["status"] == "SUCCEEDED"
    started = json.loads(described["output"])["t"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", started), started
