"""ALB/NLB target groups and classic ELBs, end to end: the CLI in a subprocess against
moto_server. moto registers the ASGs' instances in their target groups at once (`healthy`);
a stopped instance reads `unused` (Target.InvalidState)."""

from __future__ import annotations

from typing import Any

from tests.support.aws_env import build_env, capacities, elb_states, instance_ids



def tg_states(make: Any, arn: str) -> dict[str, str]:
    resp = make("elbv2").describe_target_health(TargetGroupArn=arn)
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in resp["TargetHealthDescriptions"]}


def broken_tg_deploy(deploy_broken: Any) -> Any:
    """A deploy of 2 to qa-b whose new instances are stopped before wait-elb's first
    DescribeTargetHealth (see the deploy_broken fixture)."""
    result, _ = deploy_broken("deploy", "--environment", "qa", "--instance-count", "2",
                              "--health-check-timeout", "60", "--update-timeout", "30",
                              health_call="DescribeTargetHealth")
    return result


def test_deploy_behind_one_alb_target_group(cli, make, server):
    """--target-group-arn: qa-b's 2 instances healthy in the group, qa-a drained, exit 0."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=False, target_groups=1)
    tg = env["target_groups"][0]
    result = cli("deploy", "--environment", "qa", "--target-group-arn", tg, "--instance-count", "2",
                 "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr + result.stdout
    caps = capacities(make, env["asgs"])
    assert (caps["qa-a"]["desired"], caps["qa-a"]["min"], caps["qa-b"]["instances"]) == (0, 0, 2)
    assert all(tg_states(make, tg)[i] == "healthy" for i in instance_ids(make, "qa-b"))
    assert result.transitions[-3:] == [("wait-elb", "bake", "healthy"),
                                       ("bake", "drain", "baked"), ("drain", "done", "drained")]


def test_deploy_behind_an_nlb_target_group(cli, make, server):
    """A TCP (NLB) target group: qa-b healthy in it, qa-a drained, exit 0."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=False, target_groups=1,
                    tg_protocol="TCP")
    tg = env["target_groups"][0]
    result = cli("deploy", "--environment", "qa", "--target-group-arn", tg, "--instance-count", "2",
                 "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr + result.stdout
    assert all(tg_states(make, tg)[i] == "healthy" for i in instance_ids(make, "qa-b"))
    assert capacities(make, env["asgs"])["qa-a"]["desired"] == 0


def test_deploy_behind_a_classic_elb_and_a_target_group(cli, make, server):
    """--elb-name and --target-group-arn: wait-elb waits for both; qa-b serves in both."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=True, target_groups=1)
    tg = env["target_groups"][0]
    result = cli("deploy", "--environment", "qa", "--elb-name", "qa-public",
                 "--target-group-arn", tg, "--instance-count", "2", "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr + result.stdout
    new = instance_ids(make, "qa-b")
    assert all(elb_states(make, "qa-public")[i] == "InService" for i in new)
    assert all(tg_states(make, tg)[i] == "healthy" for i in new)
    decided = result.named("inspect.decided")[0]
    assert (decided["load_balancers"], decided["target_groups"], decided["lb_source"]) == (
        ["qa-public"], [tg], "flags")


def test_deploy_without_flags_discovers_the_attachments(cli, make, server):
    """No LB flags: inspect.decided lists the ELB and both target groups as discovered."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=True, target_groups=2)
    result = cli("deploy", "--environment", "qa", "--instance-count", "2",
                 "--update-timeout", "0.1")
    assert result.returncode == 0, result.stderr + result.stdout
    decided = result.named("inspect.decided")[0]
    assert (decided["load_balancers"], decided["target_groups"], decided["lb_source"]) == (
        ["qa-public"], env["target_groups"], "discovered")
    for tg in env["target_groups"]:
        assert all(tg_states(make, tg)[i] == "healthy" for i in instance_ids(make, "qa-b"))


def test_target_group_not_attached_is_refused_before_scaling(cli, make, server):
    """A group qa-b is not attached to: exit 3, names qa-b's attachments, no autoscaling write."""
    build_env(make, "qa", active="a", active_count=2, classic_elb=True, target_groups=1)
    vpc = make("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]
    created = make("elbv2").create_target_group(Name="qa-other", Protocol="HTTP", Port=80,
                                                VpcId=vpc, TargetType="instance")
    other = created["TargetGroups"][0]["TargetGroupArn"]
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--target-group-arn", other,
                 "--instance-count", "2")
    assert result.returncode == 3, result.stderr + result.stdout
    assert ("qa-b is not attached to targetgroup/qa-other; it is attached to ELB qa-public, "
            "targetgroup/qa-tg0") in result.stderr
    assert [c for c in server.mutating_calls() if c["service"] == "autoscaling"] == []
    assert capacities(make, ["qa-a", "qa-b"])["qa-b"]["desired"] == 0


def test_stopped_new_instances_fail_wait_elb_with_their_reason(deploy_broken, cli, make, server):
    """qa-b's instances stopped before wait-elb: it fails (exit 1) naming the group and reason."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=False, target_groups=1)
    result = broken_tg_deploy(deploy_broken)
    assert result.returncode == 1, result.stderr + result.stdout
    failed = result.named("state.failed")[0]
    assert failed["state"] == "wait-elb"
    assert failed["error"].startswith("wait-elb: 0/2 healthy in targetgroup/qa-tg0 after 60 s")
    assert "targetgroup/qa-tg0: 2 unused (Target.InvalidState: " in failed["error"]
    for iid in instance_ids(make, "qa-b"):
        assert failed["error"].count(iid) == 1
    assert "Target.InvalidState" in result.stderr
    assert capacities(make, env["asgs"])["qa-a"]["desired"] == 2  # old ASG still serving


def test_dry_run_plan_shows_load_balancers_and_deregistration_delays(cli, make, server):
    """--dry-run: the plan names the ELB, the groups and each group's delay; nothing is written."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=True, target_groups=2)
    make("elbv2").modify_target_group_attributes(
        TargetGroupArn=env["target_groups"][1],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "45"}])
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--instance-count", "2", "--dry-run",
                 "--wait-for-scale-down")
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.named("plan")[0]["lines"]
    assert "wait for      qa-public, targetgroup/qa-tg0, targetgroup/qa-tg1 (attached to qa-b)" in lines
    assert any(line.startswith("draining      targetgroup/qa-tg0 deregistration delay 300 s")
               for line in lines)
    assert any(line.startswith("draining      targetgroup/qa-tg1 deregistration delay 45 s")
               for line in lines)
    assert server.mutating_calls() == []


def test_status_shows_the_load_balancers_of_a_failed_run(deploy_broken, cli, make, server):
    """`abfsm status` of a run that failed in wait-elb lists its classic ELB and target group."""
    env = build_env(make, "qa", active="a", active_count=2, classic_elb=True, target_groups=1)
    assert broken_tg_deploy(deploy_broken).returncode == 1
    result = cli("status", "--environment", "qa")
    assert result.returncode == 0, result.stderr
    assert "failed" in result.stdout.splitlines()[0]
    balancers = [line for line in result.stdout.splitlines()
                 if line.strip().startswith("balancers")]
    assert balancers and "qa-public" in balancers[0] and env["target_groups"][0] in balancers[0]
