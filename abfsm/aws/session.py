"""Build boto3 clients once, in one place, and hand out the adapters that wrap them."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from abfsm.aws.autoscaling import AutoScaling
from abfsm.aws.cloudwatch import CloudWatch
from abfsm.aws.ec2 import Ec2
from abfsm.aws.elb import ClassicElb, TargetGroups
from abfsm.aws.events import EventBus
from abfsm.aws.launch_templates import LaunchTemplates
from abfsm.aws.logs import LogStreams
from abfsm.aws.s3 import S3Objects
from abfsm.aws.sns import Topics
from abfsm.aws.stepfunctions import StateMachines
from abfsm.errors import UsageError

# Standard retry mode retries throttling (Throttling, RequestLimitExceeded, ...) with backoff.
RETRIES = {"mode": "standard", "max_attempts": 8}
# Notification sinks must never hold a deployment up: short timeouts, one retry.
NOTIFY_SERVICES = {"sns", "events", "logs"}
NOTIFY_RETRIES = {"mode": "standard", "total_max_attempts": 2}


class Services:
    """The AWS adapters of one run. Clients are created on first use."""

    def __init__(self, make_client: Callable[[str], Any],
                 preflight: Callable[[], Any] | None = None) -> None:
        self._make_client = make_client
        self._preflight = preflight

    def preflight(self) -> None:
        """Resolve profile and region now (no network call): a usage error before any state."""
        if self._preflight is not None:
            self._preflight()

    @cached_property
    def autoscaling(self) -> AutoScaling:
        return AutoScaling(self._make_client("autoscaling"))

    @cached_property
    def elb(self) -> ClassicElb:
        return ClassicElb(self._make_client("elb"))

    @cached_property
    def elbv2(self) -> TargetGroups:
        return TargetGroups(self._make_client("elbv2"))

    @cached_property
    def cloudwatch(self) -> CloudWatch:
        return CloudWatch(self._make_client("cloudwatch"))

    @cached_property
    def ec2(self) -> Ec2:
        return Ec2(self._make_client("ec2"))

    @cached_property
    def launch_templates(self) -> LaunchTemplates:
        return LaunchTemplates(self._make_client("ec2"))

    @cached_property
    def s3(self) -> S3Objects:
        return S3Objects(self._make_client("s3"))

    @cached_property
    def sns(self) -> Topics:
        return Topics(self._make_client("sns"))

    @cached_property
    def events(self) -> EventBus:
        return EventBus(self._make_client("events"))

    @cached_property
    def logs(self) -> LogStreams:
        return LogStreams(self._make_client("logs"))

    @cached_property
    def stepfunctions(self) -> StateMachines:
        return StateMachines(self._make_client("stepfunctions"))


def connect(*, region: str | None = None, endpoint_url: str | None = None,
            profile: str | None = None, credentials: dict[str, str] | None = None,
            session: Any = None) -> Services:
    """Services over boto3's standard credential chain (or explicit credentials)."""
    resolved: dict[str, Any] = {"session": session}

    def resolve() -> tuple[Any, str]:
        import os

        import boto3

        if resolved["session"] is None:
            try:
                resolved["session"] = boto3.Session(profile_name=profile, region_name=region,
                                                    **(credentials or {}))
            except Exception as exc:  # botocore.exceptions.ProfileNotFound and kin
                raise UsageError(f"--profile {profile}: {exc}") from None
        where = region or resolved["session"].region_name or os.environ.get("AWS_REGION")
        if not where:
            raise UsageError("no AWS region configured: pass --region, or set "
                             "AWS_DEFAULT_REGION / AWS_REGION, or use a profile with a region")
        return resolved["session"], where

    def make_client(service: str) -> Any:
        from botocore.config import Config

        boto_session, where = resolve()
        # A copy: botocore rewrites the dict it is given (max_attempts -> total_max_attempts).
        if service in NOTIFY_SERVICES:
            config = Config(retries=dict(NOTIFY_RETRIES), connect_timeout=2, read_timeout=3)
        else:
            config = Config(retries=dict(RETRIES), connect_timeout=10, read_timeout=60)
        return boto_session.client(service, endpoint_url=endpoint_url, config=config,
                                   region_name=where)

    return Services(make_client, preflight=resolve)
