"""What gets deployed, end to end: --image-id / --launch-template-version against moto_server.

moto's instances report the ImageId of the launch template version their group launched
them from, so "the new instances run the new AMI" is asserted on EC2 itself.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from abfsm.log_schema import validate
from tests.e2e.conftest import cli_env
from tests.support import crash_cli
from tests.support.aws_env import AMI, build_env, capacities

NEW_AMI = "ami-0123456789abcdef0"
FAST = ("--update-timeout", "0.1")


def pin(make: Any, asg: str, version: str) -> None:
    make("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=asg, LaunchTemplate={"LaunchTemplateName": "qa-lt", "Version": version})


def asg_version(make: Any, asg: str) -> str:
    group = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
    return str(group["LaunchTemplate"].get("Version"))


def versions(make: Any) -> list[dict[str, Any]]:
    return make("ec2").describe_launch_template_versions(
        LaunchTemplateName="qa-lt", MinVersion="1", MaxResults=50)["LaunchTemplateVersions"]


def images(make: Any, asg: str) -> set[str]:
    group = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"]]
    resp = make("ec2").describe_instances(InstanceIds=ids)
    return {i["ImageId"] for r in resp["Reservations"] for i in r["Instances"]}


def deployable(make: Any) -> None:
    """qa-a serving 2 on qa-lt v1 (pinned), qa-b empty and tracking $Latest."""
    build_env(make, "qa", active="a", active_count=2)
    pin(make, "qa-a", "1")


def test_image_id_deploys_a_new_version_and_the_new_instances_run_it(cli, make, server):
    """--image-id: v2 = v1 with the new AMI, qa-b set to 2 and its instances run the AMI;
    qa-a and the template's default version untouched; `abfsm status` shows what each runs."""
    deployable(make)
    result = cli("deploy", "--environment", "qa", "--instance-count", "2", "--image-id", NEW_AMI,
                 *FAST)
    assert result.returncode == 0, result.stderr + result.stdout
    made = {v["VersionNumber"]: v for v in versions(make)}
    assert sorted(made) == [1, 2]
    assert made[2]["LaunchTemplateData"] == {"ImageId": NEW_AMI, "InstanceType": "t3.micro"}
    assert result.finished["run_id"] in made[2]["VersionDescription"]
    assert made[1]["DefaultVersion"] and not made[2]["DefaultVersion"]
    assert asg_version(make, "qa-b") == "2" and asg_version(make, "qa-a") == "1"
    assert images(make, "qa-b") == {NEW_AMI}
    [created] = result.named("version.created")
    assert created["version"] == 2 and created["reused"] is False
    [decided] = result.named("version.decided")
    assert decided["version_from"] == "$Latest" and decided["version_from_number"] == 1
    assert [p for e in result.events for p in validate(e)] == []  # new events documented
    status = cli("status", "--environment", "qa")
    assert "versions after the last run: qa-a qa-lt v1; qa-b qa-lt v2" in status.stdout


def test_launch_template_version_latest_is_resolved_to_a_number_and_recorded(cli, make, server,
                                                                             tmp_path):
    """--launch-template-version $Latest with v1, v2: qa-b is set to "2" (a number, never
    $Latest), and the archived record says version 2, from v1."""
    deployable(make)
    make("ec2").create_launch_template_version(LaunchTemplateName="qa-lt", SourceVersion="1",
                                               LaunchTemplateData={"ImageId": NEW_AMI})
    result = cli("deploy", "--environment", "qa", "--instance-count", "1",
                 "--launch-template-version", "$Latest", *FAST)
    assert result.returncode == 0, result.stderr + result.stdout
    assert asg_version(make, "qa-b") == "2"
    assert images(make, "qa-b") == {NEW_AMI}
    records = crash_cli.Records(make, "qa", state_dir=tmp_path / "state").archived()
    context = records[result.finished["run_id"]]["context"]
    assert (context["version"], context["version_from_number"]) == (2, 2)
    assert context["versions"]["qa-b"] == "qa-lt v2"
    assert len(versions(make)) == 2  # nothing created


def test_rollback_restores_the_version_the_target_ran_before(deploy_broken, make):
    """--rollback-on-failure after --image-id: qa-b back to 0 *and* back to v1 (the number
    it ran before, not $Latest, which is now the new version); qa-a untouched on v1."""
    deployable(make)
    result, stopped = deploy_broken("deploy", "--environment", "qa", "--instance-count", "2",
                                    "--image-id", NEW_AMI, "--rollback-on-failure",
                                    "--health-check-timeout", "5", *FAST)
    assert result.returncode == 1, result.stderr + result.stdout
    assert result.finished["outcome"] == "rolled-back" and stopped
    assert asg_version(make, "qa-b") == "1" and asg_version(make, "qa-a") == "1"
    assert capacities(make, ["qa-b"])["qa-b"]["desired"] == 0
    sets = [(e["version"], e["reason"]) for e in result.named("version.set")]
    assert sets == [(2, "deploy"), (1, "rollback")]
    assert [p for e in result.events for p in validate(e)] == []


def test_a_mixed_instances_policy_group_gets_the_version_through_its_policy(cli, make, server):
    """qa-a / qa-b with a MixedInstancesPolicy on qa-lt v1: --image-id sets v2 in qa-b's
    policy (overrides kept), its instances run the new AMI, qa-a's policy stays on v1."""
    lt = make("ec2").create_launch_template(LaunchTemplateName="qa-lt", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    for name, desired in (("qa-a", 2), ("qa-b", 0)):
        make("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=4, DesiredCapacity=desired,
            AvailabilityZones=["us-east-1a"], MixedInstancesPolicy={"LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "1"},
                "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3.small"}]}})
    result = cli("deploy", "--environment", "qa", "--no-elb-check", "--instance-count", "2",
                 "--image-id", NEW_AMI, *FAST)
    assert result.returncode == 0, result.stderr + result.stdout
    groups = {g["AutoScalingGroupName"]: g["MixedInstancesPolicy"]["LaunchTemplate"]
              for g in make("autoscaling").describe_auto_scaling_groups(
                  AutoScalingGroupNames=["qa-a", "qa-b"])["AutoScalingGroups"]}
    assert groups["qa-b"]["LaunchTemplateSpecification"]["Version"] == "2"
    assert groups["qa-a"]["LaunchTemplateSpecification"]["Version"] == "1"
    assert [o["InstanceType"] for o in groups["qa-b"]["Overrides"]] == ["t3.micro", "t3.small"]
    assert images(make, "qa-b") == {NEW_AMI}


def test_dry_run_with_image_id_creates_no_version(cli, make, server):
    """--dry-run --image-id: the plan names the new version and its calls; moto_server saw no
    mutating call at all and the template still has one version."""
    deployable(make)
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--instance-count", "2", "--image-id", NEW_AMI,
                 "--dry-run")
    assert result.returncode == 0, result.stderr + result.stdout
    assert server.mutating_calls() == []
    assert len(versions(make)) == 1
    [plan] = result.named("plan")
    assert any(line.startswith("version ") and NEW_AMI in line for line in plan["lines"])
    assert any(c.startswith("ec2 CreateLaunchTemplateVersion qa-lt SourceVersion=1")
               for c in plan["calls"])


def test_resume_after_a_kill_during_create_creates_no_second_version(server, make, tmp_path):
    """SIGKILL while CreateLaunchTemplateVersion is in flight (the version is made, the run
    never hears of it): resume finds it by its description and creates no second one."""
    from tests.support.fault_proxy import FaultProxy

    deployable(make)
    env = cli_env(server)
    started: list[crash_cli.Background] = []

    def kill_the_cli() -> None:  # the request reaches moto after this: the version is made
        os.kill(started[0].proc.pid, signal.SIGKILL)
        started[0].proc.wait(timeout=10)

    with FaultProxy(server.endpoint) as proxy:
        proxy.before("CreateLaunchTemplateVersion", kill_the_cli)
        run = crash_cli.start(env, tmp_path, "deploy", "--environment", "qa", "--instance-count",
                              "2", "--image-id", NEW_AMI, *FAST,
                              extra_env={"AWS_ENDPOINT_URL": proxy.endpoint})
        started.append(run)
        assert run.finish() == -signal.SIGKILL
    assert [v["VersionNumber"] for v in versions(make)] == [1, 2]
    crash_cli.Records(make, "qa", state_dir=tmp_path / "state").age_heartbeat(3600)
    resumed = crash_cli.start(env, tmp_path, "resume", "--environment", "qa")
    assert resumed.finish() == 0, resumed.stderr
    assert [v["VersionNumber"] for v in versions(make)] == [1, 2]
    [created] = resumed.named("version.created")
    assert created["version"] == 2 and created["reused"] is True
    assert asg_version(make, "qa-b") == "2" and images(make, "qa-b") == {NEW_AMI}


def test_launch_configuration_asg_is_refused_naming_the_migration(cli, make, server):
    """ASGs on a launch configuration with --image-id: exit 3, the message names the
    migration to a launch template, no mutating call."""
    make("autoscaling").create_launch_configuration(LaunchConfigurationName="qa-lc",
                                                    ImageId=AMI, InstanceType="t3.micro")
    for name, desired in (("qa-a", 1), ("qa-b", 0)):
        make("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchConfigurationName="qa-lc", MinSize=0, MaxSize=4,
            DesiredCapacity=desired, AvailabilityZones=["us-east-1a"])
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--no-elb-check", "--image-id", NEW_AMI)
    assert result.returncode == 3, result.stderr + result.stdout
    assert "launch configuration qa-lc" in result.stderr
    assert "Copy to launch template" in result.stderr
    assert server.mutating_calls() == []


def test_active_on_latest_with_image_id_is_refused_naming_the_pin_command(cli, make, server):
    """qa-a (active) tracks $Latest: --image-id would change what it launches; exit 3 with
    the command that pins it, and no version was created."""
    build_env(make, "qa", active="a", active_count=2)  # both on $Latest
    lt_id = make("ec2").describe_launch_templates(
        LaunchTemplateNames=["qa-lt"])["LaunchTemplates"][0]["LaunchTemplateId"]
    server.reset_calls()
    result = cli("deploy", "--environment", "qa", "--image-id", NEW_AMI)
    assert result.returncode == 3, result.stderr + result.stdout
    assert (f"aws autoscaling update-auto-scaling-group --auto-scaling-group-name qa-a "
            f"--launch-template LaunchTemplateId={lt_id},Version=1") in result.stderr
    assert server.mutating_calls() == [] and len(versions(make)) == 1


def suspended(make: Any, asg: str) -> list[str]:
    group = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
    return sorted(p["ProcessName"] for p in group.get("SuspendedProcesses", []))


def test_resume_processes_resumes_for_the_run_and_suspends_again(cli, make, server):
    """Launch suspended on qa-b, Terminate on qa-a: --resume-processes resumes each where it
    is needed, the deployment completes, and both are suspended again at the end (qa-a's
    only once it is empty)."""
    build_env(make, "qa", active="a", active_count=2)
    asg = make("autoscaling")
    asg.suspend_processes(AutoScalingGroupName="qa-b", ScalingProcesses=["Launch", "AZRebalance"])
    asg.suspend_processes(AutoScalingGroupName="qa-a", ScalingProcesses=["Terminate"])
    result = cli("deploy", "--environment", "qa", "--instance-count", "2", "--resume-processes",
                 *FAST)
    assert result.returncode == 0, result.stderr + result.stdout
    assert suspended(make, "qa-b") == ["AZRebalance", "Launch"]
    assert suspended(make, "qa-a") == ["Terminate"]
    assert [(e["asg"], e["processes"]) for e in result.named("processes.resumed")] == [
        ("qa-b", ["Launch"]), ("qa-a", ["Terminate"])]
    assert sorted((e["asg"], e["processes"][0]) for e in result.named("processes.suspended")) == [
        ("qa-a", "Terminate"), ("qa-b", "Launch")]
    assert [p for e in result.events for p in validate(e)] == []
    names = [e["event"] for e in result.events]
    polls = [e for e in result.events if e["event"] == "wait.progress" and e["state"] == "drain"]
    assert polls and polls[-1]["ready"] == polls[-1]["total"]  # qa-a seen empty ...
    assert names.index("wait.progress", names.index("drain.started")) < \
        max(i for i, n in enumerate(names) if n == "processes.suspended")  # ... before
