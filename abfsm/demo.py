"""`abfsm demo`: a real A/B deployment against an AWS emulator started in-process.

Starts moto's threaded server on a free loopback port, creates an environment (launch
template, classic ELB `demo-public`, `demo-a` serving 2 instances, empty `demo-b`, lock
bucket `demo-locks`), runs the same `runner.deploy` that `abfsm deploy` runs, prints what
it sees afterwards, and stops the emulator. No credentials, no network beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import structlog

from abfsm.aws import connect
from abfsm.context import Settings
from abfsm.errors import UsageError

REGION = "us-east-1"
# moto does not validate AMI ids; listing its images costs ~2 s per call.
AMI = "ami-12c6146b"
CREDENTIALS = {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
_log = structlog.get_logger("abfsm.demo")


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """moto's server on 127.0.0.1 and a free port; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise UsageError("needs the AWS emulator: pip install 'abfsm[demo]'") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the console
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **CREDENTIALS)


def create_environment(endpoint: str, env: str = "demo", *, serving: int = 2,
                       bucket: str = "demo-locks") -> dict[str, Any]:
    """Launch template, classic ELB, ENV-a serving `serving` instances, empty ENV-b, bucket."""
    ec2, elb = client(endpoint, "ec2"), client(endpoint, "elb")
    asg, s3 = client(endpoint, "autoscaling"), client(endpoint, "s3")
    ec2.create_launch_template(LaunchTemplateName=f"{env}-app",
                               LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
    elb.create_load_balancer(LoadBalancerName=f"{env}-public", AvailabilityZones=[f"{REGION}a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                         "InstancePort": 8080}])
    for suffix, desired in (("a", serving), ("b", 0)):
        asg.create_auto_scaling_group(
            AutoScalingGroupName=f"{env}-{suffix}", MinSize=0, MaxSize=10,
            DesiredCapacity=desired, AvailabilityZones=[f"{REGION}a"],
            LaunchTemplate={"LaunchTemplateName": f"{env}-app", "Version": "$Latest"},
            LoadBalancerNames=[f"{env}-public"])
    s3.create_bucket(Bucket=bucket)
    return {"elb": f"{env}-public", "bucket": bucket, "asgs": [f"{env}-a", f"{env}-b"]}


def observe(endpoint: str, env: str = "demo") -> dict[str, Any]:
    """What AWS shows now: each ASG's desired capacity and instance count."""
    groups = client(endpoint, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[f"{env}-a", f"{env}-b"])["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: {"desired": g["DesiredCapacity"],
                                        "instances": len(g["Instances"])} for g in groups}


def run(*, step: int = 1, log_format: str = "console", verbose: bool = False,
        state_dir: str | None = None) -> Any:
    from abfsm import runner

    with emulator() as endpoint:
        made = create_environment(endpoint)
        _log.info("demo.ready", endpoint=endpoint, created=made, before=observe(endpoint))
        settings = Settings(environment="demo", elb_names=[made["elb"]],
                            lock_bucket_name=made["bucket"], instance_count_match=True,
                            instance_count_step=step, update_timeout=0.5,
                            health_check_timeout=60, log_format=log_format, verbose=verbose,
                            region=REGION, endpoint_url=endpoint,
                            state_dir=state_dir or ".abfsm")
        services = connect(region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS)
        from abfsm.cli import next_command

        outcome = runner.deploy(settings, services=services, render_next=next_command)
        _log.info("demo.after", after=observe(endpoint),
                  lock_left=bool(client(endpoint, "s3").list_objects_v2(
                      Bucket=made["bucket"], Prefix="demo.lock").get("KeyCount")))
    return outcome
