"""ALB/NLB target groups against in-process moto: the adapter, wait-elb, discovery, refusal,
the API calls per poll, and drain's wait for deregistration.

moto registers an ASG's instances in the target groups the ASG is attached to as soon as it
launches them (all `healthy` at once; a stopped instance is `unused`, Target.InvalidState).
It never deregisters them when the ASG scales in: the terminated instances stay `healthy`
(a known moto quirk). Where a test needs the AWS behaviour, it says what it does instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from abfsm import runner
from abfsm.actions import ACTIONS, Action, Run
from abfsm.actions.health import lb_progress
from abfsm.aws import Services
from abfsm.aws.autoscaling import _group
from abfsm.aws.elb import Member
from abfsm.context import Plan, Settings
from abfsm.record import new_record
from tests.support.aws_env import build_env, capacities, client_factory, elb_states, instance_ids


def tg_states(make: Callable[[str], Any], arn: str) -> dict[str, str]:
    resp = make("elbv2").describe_target_health(TargetGroupArn=arn)
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in resp["TargetHealthDescriptions"]}


def deploy(services: Any, clock: Any, tmp_path: Path, *,
           actions: dict[str, Action] | None = None, **flags: Any) -> runner.Outcome:
    """An in-process `abfsm deploy --environment qa --instance-count 2` (plus flags).

    With `actions`, the same run is driven with some actions wrapped (runner.drive)."""
    settings = Settings(environment="qa", state_dir=str(tmp_path / "state"), instance_count=2,
                        **flags)
    if actions is None:
        return runner.deploy(settings, services=services, clock=clock)
    spec = runner.load(settings)
    run = Run(settings=settings, plan=Plan(), aws=services, clock=clock,
              lock=runner.make_lock(settings, services, clock),
              record=new_record("qa", spec.version, spec.initial, settings.to_dict(), clock),
              spec=spec)
    return runner.drive(run, spec.initial, {**ACTIONS, **actions})


def then(action: Action, hook: Callable[[Run], None]) -> Action:
    """`action`, followed by `hook(run)` once it has returned its outcome."""

    def fn(run: Run) -> str:
        trigger = action(run)
        hook(run)
        return trigger

    return Action(action.name, fn, action.outcomes, action.requires)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def autoscaling_mutations(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events(logs, "aws.call") if e["service"] == "autoscaling"]


# --- the adapter ---------------------------------------------------------------------------

def test_members_are_the_asg_instances_registered_healthy(aws, services):
    """DescribeTargetHealth lists the attached ASG's instances, each `healthy`."""
    env = build_env(aws, "qa", active="a", active_count=3, classic_elb=False, target_groups=1)
    members = services.elbv2.members(env["target_groups"][0])
    assert sorted(m.id for m in members) == instance_ids(aws, "qa-a")
    assert {m.state for m in members} == {"healthy"}


def test_stopped_instance_is_unused_with_reason_invalid_state(aws, services):
    """A stopped instance reads as `unused`, reason Target.InvalidState (as on AWS)."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=False, target_groups=1)
    stopped = instance_ids(aws, "qa-a")[0]
    aws("ec2").stop_instances(InstanceIds=[stopped])
    members = {m.id: m for m in services.elbv2.members(env["target_groups"][0])}
    assert members[stopped] == Member(stopped, "unused", "Target.InvalidState")


def test_deregistration_delay_is_read_from_the_target_group(aws, services):
    """The target group's deregistration_delay.timeout_seconds attribute, as an int."""
    env = build_env(aws, "qa", active="a", classic_elb=False, target_groups=1)
    aws("elbv2").modify_target_group_attributes(
        TargetGroupArn=env["target_groups"][0],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "45"}])
    assert services.elbv2.deregistration_delay(env["target_groups"][0]) == 45


def test_traffic_source_attachments_are_discovered():
    """TrafficSources (elbv2 and elb types) join TargetGroupARNs / LoadBalancerNames, once each.

    moto's DescribeAutoScalingGroups has no TrafficSources, so this parses AWS's shape."""
    tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/qa-tg9/abc"
    old_tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/qa-tg0/def"
    group = _group({"AutoScalingGroupName": "qa-b", "MinSize": 0, "MaxSize": 10,
                    "DesiredCapacity": 0, "Instances": [], "LoadBalancerNames": [],
                    "TargetGroupARNs": [old_tg],
                    "TrafficSources": [{"Identifier": old_tg, "Type": "elbv2"},
                                       {"Identifier": tg, "Type": "elbv2"},
                                       {"Identifier": "qa-public", "Type": "elb"}]})
    assert group.target_group_arns == (old_tg, tg)
    assert group.load_balancer_names == ("qa-public",)


# --- wait-elb's view: only the new instances count -----------------------------------------

def test_old_healthy_instances_do_not_count_for_the_new_ones():
    """Old instances healthy in the group count for nothing; an unregistered new one is not
    ready."""
    tg = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/qa-tg0/x"
    members = {tg: {"i-old1": Member("i-old1", "healthy"), "i-old2": Member("i-old2", "healthy"),
                    "i-new1": Member("i-new1", "healthy")}}
    progress = lb_progress(members, ["i-new1", "i-new2"])
    assert (progress.ready, progress.total, progress.done) == (1, 2, False)
    assert progress.not_ready == [{"id": "i-new2", "lb": "targetgroup/qa-tg0", "state": "unused",
                                   "reason": "Target.NotRegistered"}]


def test_not_ready_list_goes_instance_by_instance_across_load_balancers():
    """Each instance's entries for every load balancer come together, so the first few entries
    (all a timeout message shows) name every load balancer."""
    tg = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/qa-tg0/x"
    ids = [f"i-{n}" for n in range(6)]
    members = {"qa-public": {i: Member(i, "OutOfService", "Instance") for i in ids},
               tg: {i: Member(i, "unhealthy", "Target.FailedHealthChecks") for i in ids}}
    progress = lb_progress(members, ids)
    assert [(n["id"], n["lb"]) for n in progress.not_ready[:4]] == [
        ("i-0", "qa-public"), ("i-0", "targetgroup/qa-tg0"),
        ("i-1", "qa-public"), ("i-1", "targetgroup/qa-tg0")]
    assert progress.summary == "0/6 InService in qa-public; 0/6 healthy in targetgroup/qa-tg0"


# --- deployments behind target groups ------------------------------------------------------

def test_deploy_behind_one_alb_target_group(aws, services, clock, tmp_path):
    """--target-group-arn: qa-b's instances healthy in the group, qa-a drained, exit 0."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=False, target_groups=1)
    tg = env["target_groups"][0]
    outcome = deploy(services, clock, tmp_path, target_group_arns=[tg])
    assert outcome.exit_code == 0, outcome.message
    caps = capacities(aws, env["asgs"])
    assert (caps["qa-a"]["desired"], caps["qa-a"]["min"], caps["qa-b"]["instances"]) == (0, 0, 2)
    states = tg_states(aws, tg)
    assert all(states[i] == "healthy" for i in instance_ids(aws, "qa-b"))


def test_deploy_behind_an_nlb_target_group(aws, services, clock, tmp_path):
    """A TCP (NLB) target group works the same: qa-b healthy in it, exit 0."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=False, target_groups=1,
                    tg_protocol="TCP")
    tg = env["target_groups"][0]
    [described] = aws("elbv2").describe_target_groups(TargetGroupArns=[tg])["TargetGroups"]
    assert described["Protocol"] == "TCP"
    with capture_logs() as logs:
        outcome = deploy(services, clock, tmp_path, target_group_arns=[tg])
    assert outcome.exit_code == 0, outcome.message
    assert all(tg_states(aws, tg)[i] == "healthy" for i in instance_ids(aws, "qa-b"))
    waited = [e for e in events(logs, "wait.progress") if e["state"] == "wait-elb"]
    assert waited[-1]["ready"] == waited[-1]["total"] == 2


def test_deploy_behind_a_classic_elb_and_a_target_group(aws, services, clock, tmp_path):
    """--elb-name and --target-group-arn: qa-b InService in the ELB and healthy in the group."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=True, target_groups=1)
    tg = env["target_groups"][0]
    outcome = deploy(services, clock, tmp_path, elb_names=["qa-public"], target_group_arns=[tg])
    assert outcome.exit_code == 0, outcome.message
    new = instance_ids(aws, "qa-b")
    assert all(elb_states(aws, "qa-public")[i] == "InService" for i in new)
    assert all(tg_states(aws, tg)[i] == "healthy" for i in new)
    assert capacities(aws, env["asgs"])["qa-a"]["desired"] == 0


def test_deploy_without_flags_discovers_every_attachment(aws, services, clock, tmp_path):
    """No --elb-name / --target-group-arn: the ELB and both groups are discovered and logged."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=True, target_groups=2)
    with capture_logs() as logs:
        outcome = deploy(services, clock, tmp_path)
    assert outcome.exit_code == 0, outcome.message
    decided = events(logs, "inspect.decided")[0]
    assert decided["lb_source"] == "discovered"
    assert decided["load_balancers"] == ["qa-public"]
    assert decided["target_groups"] == env["target_groups"]
    assert outcome.record is not None
    assert outcome.record.context["target_groups"] == env["target_groups"]


def test_target_group_not_attached_is_refused_before_scaling(aws, services, clock, tmp_path):
    """A named group qa-b is not attached to: exit 3, says what qa-b is attached to, scales
    nothing."""
    build_env(aws, "qa", active="a", active_count=2, classic_elb=True, target_groups=1)
    vpc = aws("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]
    created = aws("elbv2").create_target_group(Name="qa-other", Protocol="HTTP", Port=80,
                                               VpcId=vpc, TargetType="instance")
    other = created["TargetGroups"][0]["TargetGroupArn"]
    with capture_logs() as logs:
        outcome = deploy(services, clock, tmp_path, target_group_arns=[other])
    assert outcome.exit_code == 3
    assert ("qa-b is not attached to targetgroup/qa-other; it is attached to ELB qa-public, "
            "targetgroup/qa-tg0") in outcome.message
    assert autoscaling_mutations(logs) == []
    assert capacities(aws, ["qa-a", "qa-b"])["qa-b"]["desired"] == 0


def test_stopped_new_instance_fails_wait_elb_with_its_reason(aws, services, clock, tmp_path):
    """New instances stopped after wait-instances: wait-elb times out naming each LB and reason."""
    build_env(aws, "qa", active="a", active_count=2, classic_elb=True, target_groups=1)

    def stop_new(run: Run) -> None:
        aws("ec2").stop_instances(InstanceIds=run.plan.instance_ids)

    outcome = deploy(services, clock, tmp_path, health_check_timeout=60,
                     actions={"wait_instances": then(ACTIONS["wait_instances"], stop_new)})
    assert outcome.record is not None
    assert (outcome.exit_code, outcome.record.failed_state) == (1, "wait-elb")
    text = outcome.message
    assert text.startswith("wait-elb: 0/2 InService in qa-public; "
                           "0/2 healthy in targetgroup/qa-tg0 after 60 s")
    assert "; qa-public: 2 OutOfService (Instance: " in text
    assert "; targetgroup/qa-tg0: 2 unused (Target.InvalidState: " in text
    for iid in instance_ids(aws, "qa-b"):
        assert text.count(iid) == 2  # once per load balancer
    assert capacities(aws, ["qa-a"])["qa-a"]["desired"] == 2  # the old ASG still serves


def test_wait_elb_with_two_target_groups_makes_two_calls_per_poll(aws, clock, tmp_path, api_calls):
    """Each wait-elb poll: one DescribeTargetHealth per group (2), no DescribeAutoScalingGroups."""
    build_env(aws, "qa", active="a", active_count=2, classic_elb=False, target_groups=2)
    make = client_factory()
    services = Services(lambda service: api_calls.watch(make(service)))
    seen: dict[str, list[str]] = {}

    def stop_new(run: Run) -> None:  # unhealthy for two polls, then started again
        aws("ec2").stop_instances(InstanceIds=run.plan.instance_ids)
        clock.on_sleep(lambda: len(clock.sleeps) == 2 and aws("ec2").start_instances(
            InstanceIds=run.plan.instance_ids))

    def measure(run: Run) -> str:
        before = len(api_calls.names)
        trigger = ACTIONS["wait_elb"](run)
        seen["wait-elb"] = api_calls.names[before:]
        return trigger

    with capture_logs() as logs:
        outcome = deploy(services, clock, tmp_path, actions={
            "wait_instances": then(ACTIONS["wait_instances"], stop_new),
            "wait_elb": Action("wait_elb", measure, ACTIONS["wait_elb"].outcomes,
                               requires=ACTIONS["wait_elb"].requires)})
    assert outcome.exit_code == 0, outcome.message
    polls = [e for e in events(logs, "wait.progress") if e["state"] == "wait-elb"]
    assert [p["ready"] for p in polls] == [0, 0, 2]
    assert seen["wait-elb"] == ["DescribeTargetHealth"] * 2 * len(polls)


def test_drain_waits_until_old_targets_are_deregistered(aws, services, clock, tmp_path):
    """--wait-for-scale-down: drain polls until the old targets leave both groups, then ends.

    moto never deregisters them (they stay `healthy` after qa-a scales to 0); here the test
    deregisters them itself after the drain's second sleep, as AWS does once the
    deregistration delay has passed. Everything else is moto answering real API calls."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=False, target_groups=2)
    old = instance_ids(aws, "qa-a")

    def deregister_later(run: Run) -> None:
        def maybe() -> None:
            if run.state == "drain" and len(clock.sleeps) == 2:
                for tg in env["target_groups"]:
                    aws("elbv2").deregister_targets(TargetGroupArn=tg,
                                                    Targets=[{"Id": i} for i in old])
        clock.on_sleep(maybe)

    with capture_logs() as logs:
        outcome = deploy(services, clock, tmp_path, wait_for_scale_down=True,
                         actions={"wait_elb": then(ACTIONS["wait_elb"], deregister_later)})
    assert outcome.exit_code == 0, outcome.message
    polls = [e for e in events(logs, "wait.progress") if e["state"] == "drain"]
    assert [(p["ready"], p["total"]) for p in polls] == [(0, 2), (0, 2), (2, 2)]
    assert {n["lb"] for n in polls[0]["not_ready"]} == {"targetgroup/qa-tg0", "targetgroup/qa-tg1"}
    for tg in env["target_groups"]:
        assert not set(old) & set(tg_states(aws, tg))
    assert events(logs, "drain.finished")[0]["asg"] == "qa-a"


def test_drain_times_out_while_old_targets_stay_registered(aws, services, clock, tmp_path):
    """--wait-for-scale-down and targets never deregistered: drain fails at the timeout, exit 1.

    Here moto's quirk (terminated targets stay `healthy`) stands in for a deregistration
    that never finishes."""
    env = build_env(aws, "qa", active="a", active_count=2, classic_elb=False, target_groups=1)
    outcome = deploy(services, clock, tmp_path, wait_for_scale_down=True, health_check_timeout=60)
    assert outcome.record is not None
    assert (outcome.exit_code, outcome.record.failed_state) == (1, "drain")
    assert outcome.message.startswith(
        "drain: 0 instance(s) left in qa-a; 2 still registered in targetgroup/qa-tg0 after 60 s")
    assert capacities(aws, env["asgs"])["qa-a"]["desired"] == 0
