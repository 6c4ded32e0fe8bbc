"""The launch template adapter (abfsm/aws/launch_templates.py) and the group's template fields, against moto."""

from __future__ import annotations

from typing import Any

from tests.support.aws_env import AMI

NEW_AMI = "ami-0123456789abcdef0"


def template(aws: Any, versions: int = 1) -> str:
    ec2 = aws("ec2")
    lt = ec2.create_launch_template(LaunchTemplateName="qa-lt", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    for n in range(2, versions + 1):
        ec2.create_launch_template_version(LaunchTemplateId=lt, SourceVersion="1",
                                           VersionDescription=f"v{n}",
                                           LaunchTemplateData={"ImageId": AMI})
    return str(lt)


def test_versions_resolves_latest_default_and_numbers_in_one_call(services, aws, api_calls):
    """$Latest -> 3, $Default -> 1, "2" -> 2, answered by one DescribeLaunchTemplateVersions."""
    lt = template(aws, versions=3)
    api_calls.watch(services.launch_templates._client)
    found = services.launch_templates.versions(lt, ["$Latest", "$Default", "2"])
    assert {k: v.number for k, v in found.items()} == {"$Latest": 3, "$Default": 1, "2": 2}
    assert found["$Default"].default and not found["$Latest"].default
    assert found["2"].template_name == "qa-lt"
    assert api_calls.count("DescribeLaunchTemplateVersions") == 1


def test_create_version_copies_the_source_with_the_new_image(services, aws):
    """CreateLaunchTemplateVersion from v1 with ImageId: v2 has the new image and the
    description; the default version stays 1."""
    lt = template(aws)
    made = services.launch_templates.create_version(lt, source_version=1, image_id=NEW_AMI,
                                       description="abfsm qa run r1: ImageId x")
    assert (made.number, made.image_id, made.description) == (2, NEW_AMI,
                                                              "abfsm qa run r1: ImageId x")
    assert services.launch_templates.versions(lt, ["$Default"])["$Default"].number == 1


def test_create_version_keeps_the_source_versions_other_data(services, aws):
    """The new version is the source with another ImageId: its InstanceType is kept (AWS's
    SourceVersion semantics; moto corrected, see abfsm/emulator/fixes.py)."""
    lt = template(aws)
    services.launch_templates.create_version(lt, source_version=1, image_id=NEW_AMI, description="d")
    [v2] = aws("ec2").describe_launch_template_versions(LaunchTemplateId=lt,
                                                        Versions=["2"])["LaunchTemplateVersions"]
    assert v2["LaunchTemplateData"] == {"ImageId": NEW_AMI, "InstanceType": "t3.micro"}


def test_plain_moto_drops_the_source_versions_data(services, aws):
    """Without the correction moto's new version has only the ImageId given."""
    from moto.ec2.responses.launch_templates import LaunchTemplates

    from abfsm.emulator.fixes import unpatched

    lt = template(aws)
    with unpatched((LaunchTemplates, "create_launch_template_version")):
        services.launch_templates.create_version(lt, source_version=1, image_id=NEW_AMI, description="d")
    [v2] = aws("ec2").describe_launch_template_versions(LaunchTemplateId=lt,
                                                        Versions=["2"])["LaunchTemplateVersions"]
    assert "InstanceType" not in v2["LaunchTemplateData"]


def test_versions_after_lists_only_newer_versions(services, aws):
    """versions_after(lt, 1) answers v2 and v3 (where a run's own new version is looked for)."""
    lt = template(aws, versions=3)
    assert [v.number for v in services.launch_templates.versions_after(lt, 1)] == [2, 3]
    assert services.launch_templates.versions_after(lt, 3) == []


def test_group_reads_launch_template_and_launch_configuration(services, aws):
    """Group.launch_template from LaunchTemplate (version as configured); a launch
    configuration group has none and names its configuration."""
    lt = template(aws)
    asg = aws("autoscaling")
    asg.create_auto_scaling_group(AutoScalingGroupName="qa-a", MinSize=0, MaxSize=2,
                                  LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
                                  AvailabilityZones=["us-east-1a"])
    asg.create_launch_configuration(LaunchConfigurationName="qa-lc", ImageId=AMI,
                                    InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName="qa-b", MinSize=0, MaxSize=2,
                                  LaunchConfigurationName="qa-lc", AvailabilityZones=["us-east-1a"])
    groups = services.autoscaling.describe(["qa-a", "qa-b"])
    ref = groups["qa-a"].launch_template
    assert ref is not None and (ref.id, ref.name, ref.version) == (lt, "qa-lt", "$Latest")
    assert groups["qa-a"].runs == "qa-lt $Latest"
    assert groups["qa-b"].launch_template is None
    assert groups["qa-b"].launch_configuration == "qa-lc"


def test_set_launch_template_sets_a_number_without_touching_capacity(services, aws):
    """set_launch_template(qa-a, lt, 2): LaunchTemplate Version "2", desired unchanged."""
    lt = template(aws, versions=2)
    aws("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="qa-a", MinSize=0, MaxSize=2, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "1"}, AvailabilityZones=["us-east-1a"])
    services.autoscaling.set_launch_template("qa-a", lt, 2)
    group = services.autoscaling.describe(["qa-a"])["qa-a"]
    assert group.launch_template is not None and group.launch_template.version == "2"
    assert group.desired == 1


def test_set_launch_template_through_a_mixed_instances_policy(services, aws):
    """A MixedInstancesPolicy group: the policy's launch template gets the version, its
    overrides and distribution are sent back as they were."""
    lt = template(aws, versions=2)
    policy = {"LaunchTemplate": {
        "LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "1"},
        "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3.small"}]},
        "InstancesDistribution": {"OnDemandBaseCapacity": 1}}
    aws("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="qa-b", MinSize=0, MaxSize=2, MixedInstancesPolicy=policy,
        AvailabilityZones=["us-east-1a"])
    group = services.autoscaling.describe(["qa-b"])["qa-b"]
    assert group.mixed_policy is not None and group.launch_template is not None
    services.autoscaling.set_launch_template("qa-b", lt, 2, mixed_policy=group.mixed_policy)
    after = aws("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["qa-b"])["AutoScalingGroups"][0]["MixedInstancesPolicy"]
    assert after["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] == "2"
    assert [o["InstanceType"] for o in after["LaunchTemplate"]["Overrides"]] == ["t3.micro",
                                                                                "t3.small"]
    assert after["InstancesDistribution"]["OnDemandBaseCapacity"] == 1


def test_a_capacity_update_keeps_the_mixed_instances_policy(services, aws):
    """UpdateAutoScalingGroup with only DesiredCapacity leaves the policy as it was (AWS;
    moto corrected, see abfsm/emulator/fixes.py)."""
    lt = template(aws)
    policy = {"LaunchTemplate": {
        "LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "1"},
        "Overrides": [{"InstanceType": "t3.micro"}]}}
    aws("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="qa-b", MinSize=0, MaxSize=2, MixedInstancesPolicy=policy,
        AvailabilityZones=["us-east-1a"])
    services.autoscaling.update_capacity("qa-b", desired=1)
    group = services.autoscaling.describe(["qa-b"])["qa-b"]
    assert group.mixed_policy is not None and group.desired == 1
    assert group.mixed_policy["LaunchTemplate"]["Overrides"] == [{"InstanceType": "t3.micro"}]


def test_resume_and_suspend_processes(services, aws):
    """resume_processes / suspend_processes change just the named processes."""
    lt = template(aws)
    asg = aws("autoscaling")
    asg.create_auto_scaling_group(AutoScalingGroupName="qa-a", MinSize=0, MaxSize=2,
                                  LaunchTemplate={"LaunchTemplateId": lt},
                                  AvailabilityZones=["us-east-1a"])
    asg.suspend_processes(AutoScalingGroupName="qa-a", ScalingProcesses=["Launch", "AZRebalance"])
    services.autoscaling.resume_processes("qa-a", ["Launch"])
    assert services.autoscaling.describe(["qa-a"])["qa-a"].suspended == ("AZRebalance",)
    services.autoscaling.suspend_processes("qa-a", ["Launch"])
    assert services.autoscaling.describe(["qa-a"])["qa-a"].suspended == ("AZRebalance", "Launch")
