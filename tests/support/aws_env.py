"""Build test environments with real boto3 clients (in-process mock_aws or moto_server)."""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from typing import Any

REGION = "us-east-1"
# moto does not validate AMI ids; listing its images costs ~2 s per call.
AMI = "ami-12c6146b"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def fake_aws_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """No real credentials or config can leak in: drop every AWS_ variable, set fake ones."""
    environ = os.environ if environ is None else environ
    for key in [k for k in environ if k.startswith("AWS_")]:
        del environ[key]
    environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})


def client_factory(endpoint_url: str | None = None) -> Callable[[str], Any]:
    import boto3

    def make(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url, **CREDENTIALS)

    return make


def build_env(make: Callable[[str], Any], env: str = "qa", *, active: str | None = "a",
              active_count: int = 4, active_min: int = 0, max_size: int = 10,
              classic_elb: bool = True, target_groups: int = 0, tg_protocol: str = "HTTP",
              single: bool = False, bucket: str | None = None) -> dict[str, Any]:
    """Launch template; classic ELB `ENV-public` (optional); N target groups `ENV-tgN`;
    ASGs ENV-a/ENV-b (or ENV with single=True) attached to all of them; `active` populated."""
    ec2, asg = make("ec2"), make("autoscaling")
    ec2.create_launch_template(LaunchTemplateName=f"{env}-lt",
                               LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
    out: dict[str, Any] = {"env": env, "elb": None, "target_groups": [], "bucket": bucket}
    extra: dict[str, Any] = {}
    subnet_kw: dict[str, Any] = {"AvailabilityZones": [f"{REGION}a"]}
    if classic_elb:
        make("elb").create_load_balancer(
            LoadBalancerName=f"{env}-public", AvailabilityZones=[f"{REGION}a"],
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
        out["elb"] = f"{env}-public"
        extra["LoadBalancerNames"] = [f"{env}-public"]
    if target_groups:
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        subnets = [s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
        elbv2 = make("elbv2")
        for i in range(target_groups):
            tg = elbv2.create_target_group(Name=f"{env}-tg{i}", Protocol=tg_protocol, Port=8080,
                                           VpcId=vpc, TargetType="instance")
            out["target_groups"].append(tg["TargetGroups"][0]["TargetGroupArn"])
        extra["TargetGroupARNs"] = list(out["target_groups"])
        subnet_kw = {"VPCZoneIdentifier": subnets[0]}
    names = [env] if single else [f"{env}-a", f"{env}-b"]
    for name in names:
        populated = (single and active) or name.endswith(f"-{active}")
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=active_min if populated else 0, MaxSize=max_size,
            DesiredCapacity=active_count if populated else 0,
            LaunchTemplate={"LaunchTemplateName": f"{env}-lt", "Version": "$Latest"},
            **subnet_kw, **extra)
    if bucket:
        make("s3").create_bucket(Bucket=bucket)
    out["asgs"] = names
    return out


def capacities(make: Callable[[str], Any], names: list[str]) -> dict[str, dict[str, int]]:
    groups = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=names)["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: {
        "desired": g["DesiredCapacity"], "min": g["MinSize"], "max": g["MaxSize"],
        "instances": len(g["Instances"])} for g in groups}


def instance_ids(make: Callable[[str], Any], name: str) -> list[str]:
    groups = make("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return sorted(i["InstanceId"] for g in groups for i in g["Instances"])


def elb_states(make: Callable[[str], Any], elb: str) -> dict[str, str]:
    resp = make("elb").describe_instance_health(LoadBalancerName=elb)
    return {s["InstanceId"]: s["State"] for s in resp["InstanceStates"]}
