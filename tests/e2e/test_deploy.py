"""`abfsm deploy` end to end: the CLI in a subprocess against moto_server.

Each test builds an environment with build_env, runs the CLI once and asserts on exit codes,
AWS state (capacities, ELB health), the JSON events and the calls moto_server recorded.
"""

from __future__ import annotations

import json
import re
from typing import Any

from abfsm.clock import SystemClock
from abfsm.record import new_record
from tests.support.aws_env import build_env, capacities, elb_states, instance_ids

ASGS = ["qa-a", "qa-b"]
FAST = ("--update-timeout", "0.1")


def updates(result: Any, asg: str) -> list[dict[str, Any]]:
    """The params of every UpdateAutoScalingGroup the run logged for `asg`, in order."""
    return [e["params"] for e in result.named("aws.call")
            if e["action"] == "UpdateAutoScalingGroup"
            and e["params"]["AutoScalingGroupName"] == asg]


def autoscaling_mutations(server: Any) -> list[dict[str, Any]]:
    return [c for c in server.mutating_calls() if c["service"] == "autoscaling"]


def test_standard_deployment_moves_traffic_to_the_empty_asg(cli, make, server, tmp_path):
    """qa-a serving 4 -> qa-b 4 InService in the ELB, qa-a drained, lock released, exit 0."""
    build_env(make, "qa", active="a", active_count=4)
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public",
                 "--instance-count", "4", *FAST)
    assert result.returncode == 0, result.stderr + result.stdout
    caps = capacities(make, ASGS)
    assert caps["qa-a"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-b"]["desired"] == 4 and caps["qa-b"]["instances"] == 4
    new_ids = instance_ids(make, "qa-b")
    assert elb_states(make, "qa-public") == {i: "InService" for i in new_ids}
    assert result.transitions == [
        ("locked", "inspect", "acquired"), ("inspect", "scale", "deploy"),
        ("scale", "wait-instances", "scaled"), ("wait-instances", "wait-elb", "instances_ready"),
        ("wait-elb", "bake", "healthy"), ("bake", "drain", "baked"), ("drain", "done", "drained")]
    assert not (tmp_path / "state" / "qa.lock").exists()
    runs = tmp_path / "state" / "qa" / "runs"
    archived = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert [(r["run_id"], r["status"]) for r in archived] == [(result.finished["run_id"], "done")]
    assert result.finished["exit_code"] == 0 and result.finished["lock"] == "released"


def test_both_asgs_populated_is_refused_and_nothing_changes(cli, make, server):
    """Both qa-a and qa-b have instances: exit 3, no autoscaling call, capacities as they were."""
    build_env(make, "qa", active="a", active_count=4, bucket="qa-locks")
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=2)
    before = capacities(make, ASGS)
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                 "--instance-count", "4", *FAST)
    assert result.returncode == 3, result.stderr
    assert "both qa-a" in result.stderr and "nothing was changed" in result.stderr
    assert capacities(make, ASGS) == before
    assert autoscaling_mutations(server) == []
    assert {c["service"] for c in server.mutating_calls()} == {"s3"}  # the lock's own
    assert result.transitions[-1] == ("inspect", "refused", "refuse")
    assert "Contents" not in make("s3").list_objects_v2(Bucket="qa-locks", Prefix="qa.lock")


def test_foreign_lock_object_is_left_alone_and_refused(cli, make, server):
    """An empty qa.lock abfsm did not write: exit 3 naming its age, the object untouched."""
    build_env(make, "qa", active="a", active_count=4, bucket="qa-locks")
    s3 = make("s3")
    s3.put_object(Bucket="qa-locks", Key="qa.lock", Body=b"")
    head = s3.head_object(Bucket="qa-locks", Key="qa.lock")
    before = capacities(make, ASGS)
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                 "--instance-count", "4", *FAST)
    assert result.returncode == 3, result.stderr
    assert re.search(r"s3://qa-locks/qa\.lock is held: a lock abfsm did not write "
                     r"\(0 bytes, \d+ s old", result.stderr), result.stderr
    after = s3.head_object(Bucket="qa-locks", Key="qa.lock")
    assert (after["ETag"], after["LastModified"], after["ContentLength"]) == (
        head["ETag"], head["LastModified"], 0)
    # The only write: the conditional PutObject that lost to the existing object.
    assert [(c["method"], c["path"]) for c in server.mutating_calls()] == [
        ("PUT", "/qa-locks/qa.lock")]
    assert capacities(make, ASGS) == before
    assert result.transitions == [("locked", "refused", "refuse")]
    # The summary does not claim a lock it never took, nor suggests resuming a lock this run
    # does not hold; it says how to see who holds it and, a freeze being no run of abfsm's,
    # how to lift it (issue 8 #9).
    assert result.finished["lock"] == "not taken"
    assert [step.split(": ", 1)[1] for step in result.finished["next"]] == [
        "abfsm status --environment qa --lock-bucket-name qa-locks",
        "abfsm unlock --environment qa --lock-bucket-name qa-locks --force"]


def test_local_lock_of_another_run_is_refused(cli, make, server, tmp_path):
    """A qa.lock in the state dir held by another running run: exit 3, the lock file unchanged."""
    build_env(make, "qa", active="a", active_count=4)
    other = new_record("qa", 1, "wait-elb", {"update_timeout": 30.0}, SystemClock(),
                       run_id="20260101T120000Z-0ther1")
    lock = tmp_path / "state" / "qa.lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(other.to_json())
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--instance-count", "4", *FAST)
    assert result.returncode == 3, result.stderr
    assert "run 20260101T120000Z-0ther1" in result.stderr and "status running" in result.stderr
    assert lock.read_bytes() == other.to_json()
    assert server.mutating_calls() == []
    assert capacities(make, ASGS)["qa-b"]["desired"] == 0


def test_dry_run_prints_the_plan_and_makes_no_mutating_call(cli, make, server):
    """--dry-run with a lock bucket: exit 0, a plan naming the calls, not one mutating call."""
    build_env(make, "qa", active="a", active_count=4, bucket="qa-locks")
    before = capacities(make, ASGS)
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--lock-bucket-name", "qa-locks",
                 "--instance-count", "4", "--dry-run", *FAST)
    assert result.returncode == 0, result.stderr
    [plan] = result.named("plan")
    expected = ["PutObject qa-locks/qa.lock", "UpdateAutoScalingGroup qa-b DesiredCapacity=4",
                "UpdateAutoScalingGroup qa-a DesiredCapacity=0 MinSize=0", "release the lock"]
    assert len(plan["calls"]) == len(expected)
    for call, words in zip(plan["calls"], expected, strict=True):
        assert words in call, plan["calls"]
    assert any("qa-b" in line and "4 instance(s)" in line for line in plan["lines"])
    assert server.calls(), "the dry run read nothing: the recorder would prove nothing"
    assert server.mutating_calls() == []
    assert result.named("aws.call") == []
    assert capacities(make, ASGS) == before
    assert make("s3").list_objects_v2(Bucket="qa-locks").get("KeyCount") == 0
    assert result.transitions[-1] == ("inspect", "planned", "dry_run")


def test_zero_drains_the_active_asg_min_size_too(cli, make, server):
    """--zero: the active qa-a (MinSize 2) goes to MinSize 0, desired 0, no instances."""
    build_env(make, "qa", active="a", active_count=4, active_min=2)
    result = cli("deploy", "--environment", "qa", "--zero", *FAST)
    assert result.returncode == 0, result.stderr
    caps = capacities(make, ASGS)
    assert caps["qa-a"] == {"desired": 0, "min": 0, "max": 10, "instances": 0}
    assert caps["qa-b"]["desired"] == 0
    assert updates(result, "qa-a") == [
        {"AutoScalingGroupName": "qa-a", "DesiredCapacity": 0, "MinSize": 0}]
    assert result.transitions == [("locked", "inspect", "acquired"), ("inspect", "drain", "zero"),
                                  ("drain", "done", "drained")]


def test_zero_with_both_asgs_empty_changes_nothing(cli, make, server):
    """--zero with nothing to zero: exit 0 and not one mutating call."""
    build_env(make, "qa", active=None)
    before = capacities(make, ASGS)
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--zero", *FAST)
    assert result.returncode == 0, result.stderr
    assert server.mutating_calls() == []
    assert capacities(make, ASGS) == before
    assert result.transitions[-1] == ("inspect", "done", "nothing_to_do")


def test_single_asg_is_emptied_then_filled(cli, make, server):
    """--single-asg: the populated ASG `qa` is emptied, then filled to the count; no ELB wait."""
    build_env(make, "qa", single=True, active_count=4)
    old_ids = instance_ids(make, "qa")
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--single-asg", "--no-elb-check",
                 "--instance-count", "3", *FAST)
    assert result.returncode == 0, result.stderr
    assert updates(result, "qa") == [
        {"AutoScalingGroupName": "qa", "DesiredCapacity": 0, "MinSize": 0},
        {"AutoScalingGroupName": "qa", "DesiredCapacity": 3}]
    assert capacities(make, ["qa"])["qa"]["desired"] == 3
    new_ids = instance_ids(make, "qa")
    assert len(new_ids) == 3 and not set(new_ids) & set(old_ids)
    assert ("inspect", "empty", "empty_first") in result.transitions
    assert ("empty", "scale", "emptied") in result.transitions
    assert not [c for c in server.calls() if c["action"] == "DescribeInstanceHealth"]


def test_instance_count_match_uses_the_active_desired_count(cli, make, server):
    """--instance-count-match: qa-b gets qa-a's desired 3 (not the default 8)."""
    build_env(make, "qa", active="a", active_count=3)
    result = cli("deploy", "--environment", "qa", "--instance-count-match", *FAST)
    assert result.returncode == 0, result.stderr
    caps = capacities(make, ASGS)
    assert caps["qa-b"]["desired"] == 3 and caps["qa-b"]["instances"] == 3
    assert [u["DesiredCapacity"] for u in updates(result, "qa-b")] == [3]


def test_stepping_scales_step_by_step_and_waits_for_each_step(cli, make, server):
    """--instance-count 5 --instance-count-step 2: desired 2, 4, 5, each waited for."""
    build_env(make, "qa", active="a", active_count=2)
    result = cli("deploy", "--environment", "qa", "--instance-count", "5",
                 "--instance-count-step", "2", *FAST)
    assert result.returncode == 0, result.stderr
    assert [u["DesiredCapacity"] for u in updates(result, "qa-b")] == [2, 4, 5]
    assert result.transitions[1:8] == [
        ("inspect", "scale", "deploy"), ("scale", "wait-instances", "scaled"),
        ("wait-instances", "scale", "next_step"), ("scale", "wait-instances", "scaled"),
        ("wait-instances", "scale", "next_step"), ("scale", "wait-instances", "scaled"),
        ("wait-instances", "wait-elb", "instances_ready")]
    # Between one scale call and the next, a poll saw that step's count ready.
    waited_for, sent = [], None
    for e in result.events:
        if e["event"] == "aws.call" and e["params"].get("AutoScalingGroupName") == "qa-b":
            assert sent is None or sent in waited_for, f"step {sent} was not waited for"
            sent = e["params"]["DesiredCapacity"]
        elif e["event"] == "wait.progress" and e["state"] == "wait-instances":
            if e["ready"] == e["total"] == sent:
                waited_for.append(sent)
    assert waited_for == [2, 4, 5]
    assert capacities(make, ASGS)["qa-b"]["instances"] == 5


def test_drain_sets_min_size_of_the_old_asg_to_zero(cli, make, server):
    """Old qa-a with MinSize 2: the drain succeeds and leaves it min 0, desired 0."""
    build_env(make, "qa", active="a", active_count=4, active_min=2)
    result = cli("deploy", "--environment", "qa", "--instance-count", "4", *FAST)
    assert result.returncode == 0, result.stderr
    caps = capacities(make, ASGS)
    assert (caps["qa-a"]["min"], caps["qa-a"]["desired"], caps["qa-a"]["instances"]) == (0, 0, 0)
    assert updates(result, "qa-a") == [
        {"AutoScalingGroupName": "qa-a", "DesiredCapacity": 0, "MinSize": 0}]


def test_count_above_max_size_raises_max_size_explicitly(cli, make, server):
    """MaxSize 3, --instance-count 5: a logged warning and MaxSize 5 in the scale call."""
    build_env(make, "qa", active="a", active_count=2, max_size=3)
    result = cli("deploy", "--environment", "qa", "--instance-count", "5", *FAST)
    assert result.returncode == 0, result.stderr
    [warning] = result.named("inspect.raise_max")
    assert (warning["level"], warning["asg"], warning["max_size"], warning["raise_to"]) == (
        "warning", "qa-b", 3, 5)
    assert updates(result, "qa-b") == [
        {"AutoScalingGroupName": "qa-b", "DesiredCapacity": 5, "MaxSize": 5}]
    caps = capacities(make, ASGS)
    assert (caps["qa-b"]["max"], caps["qa-b"]["desired"], caps["qa-b"]["instances"]) == (5, 5, 5)


def test_elb_that_never_becomes_healthy_fails_and_the_old_asg_keeps_serving(
        deploy_broken, cli, make, server, tmp_path):
    """New instances OutOfService: exit 1 naming wait-elb and the ids; qa-a serves; lock kept."""
    # The proxy stops qa-b's instances just before wait-elb's first DescribeInstanceHealth;
    # the virtual clock (ABFSM_VIRTUAL_CLOCK=1) runs the 600 s / 30 s wait in no real time.
    build_env(make, "qa", active="a", active_count=4)
    old_ids = instance_ids(make, "qa-a")
    result, stopped = deploy_broken("deploy", "--environment", "qa", "--elb-name", "qa-public",
                                    "--instance-count", "4", "--health-check-timeout", "600",
                                    "--update-timeout", "30")
    assert result.returncode == 1, result.stderr
    assert len(stopped) == 4
    message = result.stderr
    assert "wait-elb: 0/4 InService in qa-public after 600 s" in message, message
    assert "qa-public: 4 OutOfService (Instance: " in message, message  # one group, not 4 lines
    for iid in stopped:
        assert message.count(iid) == 1
    polls = [e for e in result.named("wait.progress") if e["state"] == "wait-elb"]
    assert len(polls) == 21  # 0, 30, ..., 600 s
    caps = capacities(make, ASGS)
    assert caps["qa-a"]["desired"] == 4
    states = elb_states(make, "qa-public")
    assert {i: states.get(i) for i in old_ids} == {i: "InService" for i in old_ids}
    assert result.transitions[-1] == ("wait-elb", "failed", "fail")
    record = json.loads((tmp_path / "state" / "qa.lock").read_bytes())
    assert (record["status"], record["failed_state"]) == ("failed", "wait-elb")
    status = cli("status", "--environment", "qa", "--format", "json")
    current = json.loads(status.stdout)["current"]
    assert (current["run_id"], current["status"], current["failed_state"]) == (
        result.finished["run_id"], "failed", "wait-elb")

