"""`abfsm demo`: a real A/B deployment against the embedded AWS emulator, started in-process.

Starts the emulator (moto with abfsm's corrections, abfsm.emulator) on a free loopback port,
creates an environment (launch template, classic ELB `demo-public`, `demo-a` serving 2
instances, empty `demo-b`, lock bucket `demo-locks`), runs the same `runner.deploy` that
`abfsm deploy` runs, prints what it sees afterwards, and stops the emulator. No credentials,
no network beyond 127.0.0.1.

By default the emulator's world model runs, sped up: new instances boot (Pending), pass the
ELB's health checks (HealthyThreshold x Interval) and the old ones drain (connection
draining), as on AWS, with 1 s here = `SCALE` s of AWS time. `fast=True` (`--fast`) is
moto's instant world: everything is InService at once.
"""

from __future__ import annotations

import contextlib
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
# The demo's world, in AWS seconds: what a small web service behind a classic ELB sees.
SCALE = 30.0  # AWS seconds per real second
BOOT_S = 40.0  # EC2 pending -> running, user data done
HEALTH_CHECK = {"HealthyThreshold": 3, "Interval": 10}  # InService after 30 s of passing checks
DRAINING_S = 60  # classic ELB connection draining
_log = structlog.get_logger("abfsm.demo")


@contextlib.contextmanager
def emulator(*, world: Any = None) -> Iterator[str]:
    """The embedded emulator on 127.0.0.1 and a free port; yields its endpoint URL.

    `world`: an abfsm.emulator.world.World to run (None: moto's instant world)."""
    try:
        from abfsm.emulator.server import serve
    except ImportError:
        raise UsageError("needs the AWS emulator: pip install 'abfsm[demo]'") from None
    with serve(world=world) as running:
        yield running.endpoint


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **CREDENTIALS)


def create_environment(endpoint: str, env: str = "demo", *, serving: int = 2,
                       bucket: str = "demo-locks", health_check: dict[str, int] | None = None,
                       draining_s: int | None = None) -> dict[str, Any]:
    """Launch template, classic ELB, ENV-a serving `serving` instances, empty ENV-b, bucket.

    `health_check` (HealthyThreshold, Interval) and `draining_s` (connection draining)
    configure the ELB; they matter to the world model only."""
    ec2, elb = client(endpoint, "ec2"), client(endpoint, "elb")
    asg, s3 = client(endpoint, "autoscaling"), client(endpoint, "s3")
    ec2.create_launch_template(LaunchTemplateName=f"{env}-app",
                               LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
    elb.create_load_balancer(LoadBalancerName=f"{env}-public", AvailabilityZones=[f"{REGION}a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                         "InstancePort": 8080}])
    if health_check:
        elb.configure_health_check(LoadBalancerName=f"{env}-public", HealthCheck={
            "Target": "HTTP:8080/health", "Timeout": 5, "UnhealthyThreshold": 2, **health_check})
    if draining_s:
        elb.modify_load_balancer_attributes(LoadBalancerName=f"{env}-public", LoadBalancerAttributes={
            "ConnectionDraining": {"Enabled": True, "Timeout": draining_s}})
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


def _world(fast: bool) -> tuple[Any, dict[str, Any] | None]:
    """The world model the demo runs (None with --fast), and how it is described in the log."""
    if fast:
        return None, None
    try:
        from abfsm.emulator.world import World, WorldClock
    except ImportError:
        raise UsageError("needs the AWS emulator: pip install 'abfsm[demo]'") from None
    described = {"scale": SCALE, "boot_s": BOOT_S,
                 "health_check_s": HEALTH_CHECK["HealthyThreshold"] * HEALTH_CHECK["Interval"],
                 "draining_s": DRAINING_S}
    return World(WorldClock(scale=SCALE), boot_s=BOOT_S), described


def run(*, step: int = 1, log_format: str = "console", verbose: bool = False,
        state_dir: str | None = None, fast: bool = False) -> Any:
    from abfsm import runner
    from abfsm.clock import SystemClock
    from abfsm.log import bind
    from abfsm.record import new_run_id

    world, described = _world(fast)
    clock = SystemClock()
    run_id = new_run_id(clock)
    bind(run_id=run_id, env="demo")  # demo.ready belongs to the run it prepares
    with emulator(world=world) as endpoint:
        made = create_environment(endpoint, health_check=HEALTH_CHECK if world else None,
                                  draining_s=DRAINING_S if world else None)
        if world is not None:
            world.advance(3600)  # demo-a was deployed an hour ago: booted, healthy, serving
        _log.info("demo.ready", endpoint=endpoint, created=made, before=observe(endpoint),
                  world=described)
        settings = Settings(environment="demo", elb_names=[made["elb"]],
                            lock_bucket_name=made["bucket"], instance_count_match=True,
                            instance_count_step=step, update_timeout=0.5,
                            health_check_timeout=60, wait_for_scale_down=world is not None,
                            log_format=log_format, verbose=verbose, region=REGION,
                            endpoint_url=endpoint, state_dir=state_dir or ".abfsm")
        services = connect(region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS)
        from abfsm.cli import next_command

        outcome = runner.deploy(settings, services=services, clock=clock, run_id=run_id,
                                render_next=next_command)
        _log.info("demo.after", after=observe(endpoint),
                  lock_left=bool(client(endpoint, "s3").list_objects_v2(
                      Bucket=made["bucket"], Prefix="demo.lock").get("KeyCount")))
    return outcome
