"""Corrections to moto where its behaviour would hide bugs that real AWS exposes.

Part of the embedded emulator: applied by `abfsm.emulator.server` (the server of `abfsm
demo`, the examples and the end-to-end tests) and in-process by the tests' autouse fixture
(tests/conftest.py). Each has a test in tests/aws/test_moto_fixes.py proving the correction
is in force; `ORIGINALS` keeps moto's own implementations and `unpatched()` restores them
for a moment, so those tests can also show what plain moto would have done.

1. MinSize/MaxSize are enforced. Plain moto accepts a DesiredCapacity outside
   [MinSize, MaxSize]; AWS answers ValidationError. Without this, a drain that forgets
   MinSize (the original tool's bug) passes on moto and fails on AWS.
2. Two ASGs sharing one classic ELB. Plain moto, whenever either ASG changes, deregisters
   every ELB instance that is not in *that* ASG, i.e. the other ASG's instances: after a
   correct A/B deploy the ELB would look empty, and "the old ASG keeps serving" or
   "--clean-up picks the ASG serving fewer instances" could not be tested. Here an ASG only
   deregisters instances that no ASG attached to the ELB owns any more.
3. S3 conditional PutObject is atomic. moto checks `If-None-Match`/`If-Match` and then
   writes, without a lock, so two racing writers can both win (in-process threads or the
   threaded server). AWS serialises them: exactly one wins. Here PutObject and DeleteObject
   run under one lock (`_s3_lock`), so check-then-write cannot interleave.
4. Classic ELB health says why. Plain moto answers DescribeInstanceHealth with
   ReasonCode/Description "N/A" for every instance; AWS gives an OutOfService instance
   ReasonCode "Instance" and a description of the failed health checks, which abfsm puts in
   its wait-elb messages.
5. CreateLaunchTemplateVersion honours SourceVersion. Plain moto ignores it and stores only
   the LaunchTemplateData given; AWS copies the source version and applies the given data
   over it. abfsm --image-id sends SourceVersion + ImageId only.
6. UpdateAutoScalingGroup without MixedInstancesPolicy keeps the group's policy, as AWS
   does. Plain moto drops it on every update (a capacity change included), so a group set
   through its policy would look like a plain launch template group afterwards.
7. Step Functions aws-sdk tasks reach the load balancer APIs. moto's ASL interpreter builds
   its boto3 client from the aws-sdk service name, and `elasticloadbalancing` /
   `elasticloadbalancingv2` are not boto3's (`elb`, `elbv2`): every such task fails. Here
   those two names are mapped to boto3's, as AWS's own integration does.
8. Step Functions aws-sdk errors are named as AWS names them: `ServiceName.CodeException`,
   the service name in PascalCase (`AutoScaling`, `ElasticLoadBalancing`,
   `ElasticLoadBalancingV2`, `S3`, `CloudWatch`) and the error code with an `Exception`
   suffix (`AutoScaling.ThrottlingException`, `S3.SlowDownException`). Plain moto names every
   unmodelled ClientError `service.serviceException` (`autoscaling.autoscalingException`), so
   a Retry or Catch on AWS's names (abfsm's throttling Retry blocks) never matches on moto.
9. Step Functions' context object gives `$$.Execution.StartTime` as AWS does, an ISO 8601
   string in UTC with milliseconds (`2026-12-01T23:42:05.123Z`). Plain moto puts a Python
   datetime there, which a Pass state copies into the run record as something that is not a
   timestamp (an execution started without `abfsm sfn start` takes its `started_at` from it).
   Services not listed in `SFN_SERVICE_ERROR_NAMES` keep moto's naming.
   (7 and 8 are proven by executions, in tests/aws/test_sfn_execution.py: the load balancer
   cases of the outcome matrix, and the throttling tests, one of them with plain moto's
   naming put back.)

Executions themselves are a server setting, not a correction: `abfsm.emulator.server` turns
them on (moto's `execute_state_machine`) and points the interpreter's inner clients at itself.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["ORIGINALS", "OUT_OF_SERVICE_DESCRIPTION", "OUT_OF_SERVICE_REASON",
           "SFN_SERVICE_ERROR_NAMES", "SFN_TO_BOTO_SERVICE", "apply", "serving_ids",
           "aws_timestamp", "sfn_error_name", "unpatched"]

_applied = False
_s3_lock = threading.Lock()

# (class, attribute) -> moto's own implementation, recorded when a correction replaces it.
ORIGINALS: dict[tuple[type, str], Callable[..., Any]] = {}

OUT_OF_SERVICE_REASON = "Instance"
OUT_OF_SERVICE_DESCRIPTION = ("Instance has failed at least the UnhealthyThreshold number of "
                              "health checks consecutively.")

# aws-sdk service name -> boto3's, where they differ (correction 7).
SFN_TO_BOTO_SERVICE = {"elasticloadbalancing": "elb", "elasticloadbalancingv2": "elbv2"}
# aws-sdk service name -> the service name AWS puts in front of its error names (correction 8).
SFN_SERVICE_ERROR_NAMES = {
    "autoscaling": "AutoScaling", "elasticloadbalancing": "ElasticLoadBalancing",
    "elasticloadbalancingv2": "ElasticLoadBalancingV2", "s3": "S3", "cloudwatch": "CloudWatch",
}


def apply() -> None:
    """Install every correction (once per process; later calls do nothing)."""
    global _applied
    if _applied:
        return
    _applied = True
    _enforce_min_max()
    _share_classic_elbs()
    _atomic_s3_conditional_put()
    _classic_elb_reasons()
    _launch_template_source_version()
    _update_keeps_mixed_instances_policy()
    _sfn_sdk_service_names()
    _sfn_sdk_error_names()
    _sfn_start_time_iso()


@contextlib.contextmanager
def unpatched(*targets: tuple[type, str]) -> Iterator[None]:
    """Put moto's own implementation of each (class, attribute) back for the block."""
    saved = {target: getattr(*target) for target in targets}
    try:
        for (cls, name) in targets:
            setattr(cls, name, ORIGINALS[(cls, name)])
        yield
    finally:
        for (cls, name), current in saved.items():
            setattr(cls, name, current)


def _replace(cls: type, name: str,
             make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(cls, name)
    ORIGINALS[(cls, name)] = original
    setattr(cls, name, functools.wraps(original)(make(original)))


def _enforce_min_max() -> None:
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend

    def make_update(original_update: Callable[..., Any]) -> Callable[..., Any]:
        def update(self: Any, name: str, availability_zones: Any, desired_capacity: Any,
                   max_size: Any, min_size: Any, *args: Any, **kwargs: Any) -> Any:
            group = self.autoscaling_groups.get(name)
            if group is not None:
                lo = group.min_size if min_size is None else int(min_size)
                hi = group.max_size if max_size is None else int(max_size)
                want = group.desired_capacity if desired_capacity is None else int(desired_capacity)
                if lo > hi:
                    raise ValidationError(f"MinSize ({lo}) must be <= MaxSize ({hi})")
                if desired_capacity is not None and not lo <= want <= hi:
                    raise ValidationError(
                        f"Desired capacity:{want} must be between the specified min size:{lo} "
                        f"and max size:{hi}")
            return original_update(self, name, availability_zones, desired_capacity, max_size,
                                   min_size, *args, **kwargs)
        return update

    def make_set(original_set: Callable[..., Any]) -> Callable[..., Any]:
        def set_desired(self: Any, group_name: str, desired_capacity: Any) -> None:
            group = self.autoscaling_groups[group_name]
            if desired_capacity is not None:
                want = int(desired_capacity)
                if want < group.min_size:
                    raise ValidationError(
                        f"New SetDesiredCapacity value {want} is below min value "
                        f"{group.min_size} for the AutoScalingGroup.")
                if want > group.max_size:
                    raise ValidationError(
                        f"New SetDesiredCapacity value {want} is above max value "
                        f"{group.max_size} for the AutoScalingGroup.")
            original_set(self, group_name, desired_capacity)
        return set_desired

    _replace(AutoScalingBackend, "update_auto_scaling_group", make_update)
    _replace(AutoScalingBackend, "set_desired_capacity", make_set)


def _share_classic_elbs() -> None:
    from moto.autoscaling.models import AutoScalingBackend
    from moto.elb.exceptions import LoadBalancerNotFoundError

    def make(_original: Callable[..., Any]) -> Callable[..., Any]:
        def update_attached_elbs(self: Any, group_name: str) -> None:
            group = self.autoscaling_groups[group_name]
            if not group.load_balancer_names:
                return
            try:
                elbs = self.elb_backend.describe_load_balancers(names=group.load_balancer_names)
            except LoadBalancerNotFoundError:
                return
            group_ids = serving_ids(group)
            for elb in elbs:
                owned_elsewhere = {
                    iid
                    for other in self.autoscaling_groups.values()
                    if other is not group and elb.name in other.load_balancer_names
                    for iid in serving_ids(other)
                }
                current = set(elb.instance_ids)
                self.elb_backend.register_instances(elb.name, group_ids - current,
                                                    from_autoscaling=True)
                self.elb_backend.deregister_instances(
                    elb.name, current - group_ids - owned_elsewhere, from_autoscaling=True)
        return update_attached_elbs

    _replace(AutoScalingBackend, "update_attached_elbs", make)


def serving_ids(group: Any) -> set[str]:
    """A group's InService instances: what it keeps registered in its load balancers (plain
    moto's `active_instances()`; the world model's Pending ones count as active, not serving)."""
    return {s.instance.id for s in group.instance_states if s.lifecycle_state == "InService"}


def _atomic_s3_conditional_put() -> None:
    from moto.s3.responses import S3Response

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _s3_lock:  # looked up at call time, so a test may swap in an instrumented lock
                return original(self, *args, **kwargs)
        return locked

    for name in ("put_object", "delete_object"):
        _replace(S3Response, name, make)


def _classic_elb_reasons() -> None:
    from moto.elb.responses import ELBResponse

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def describe_instance_health(self: Any) -> Any:
            result = original(self)
            for state in result.result["InstanceStates"]:
                if state["State"] == "OutOfService":
                    state["ReasonCode"] = OUT_OF_SERVICE_REASON
                    state["Description"] = OUT_OF_SERVICE_DESCRIPTION
            return result
        return describe_instance_health

    _replace(ELBResponse, "describe_instance_health", make)


def _launch_template_source_version() -> None:
    """CreateLaunchTemplateVersion with SourceVersion copies that version's data and applies
    the given LaunchTemplateData over it, as AWS does. Plain moto ignores SourceVersion: the
    new version holds only what was given (an ImageId alone: no instance type, no security
    groups), so a deployment that forgot SourceVersion would pass on moto and launch
    misconfigured instances on AWS."""
    from moto.ec2.responses.launch_templates import LaunchTemplates

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_launch_template_version(self: Any) -> Any:
            result = original(self)
            source = self._get_param("SourceVersion")
            if source:
                created = result.result["LaunchTemplateVersion"]
                template = self.ec2_backend.get_launch_template(created["LaunchTemplateId"])
                version = template.versions[-1]
                given = dict(version.data)
                version.data.clear()  # in place: the answer holds the same dict
                version.data.update({**template.get_version(source).data, **given})
            return result
        return create_launch_template_version

    _replace(LaunchTemplates, "create_launch_template_version", make)


def _update_keeps_mixed_instances_policy() -> None:
    from moto.autoscaling.models import FakeAutoScalingGroup

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def update(self: Any, *args: Any, **kwargs: Any) -> Any:
            before = self.mixed_instances_policy
            result = original(self, *args, **kwargs)
            if (kwargs.get("mixed_instances_policy") is None and not kwargs.get("launch_template")
                    and not kwargs.get("launch_config_name")):
                self.mixed_instances_policy = before  # not named in the request: as it was
            return result
        return update

    _replace(FakeAutoScalingGroup, "update", make)


def sfn_error_name(service: str, code: str) -> str | None:
    """AWS's error name for aws-sdk `service` failing with error `code` (None: a service whose
    naming is not corrected here)."""
    prefix = SFN_SERVICE_ERROR_NAMES.get(service)
    if prefix is None:
        return None
    return f"{prefix}.{code}" if code.endswith("Exception") else f"{prefix}.{code}Exception"


def _sfn_sdk_service_names() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def get_boto_service_name(self: Any, boto_service_name: str | None = None) -> str:
            name = str(original(self, boto_service_name))
            return SFN_TO_BOTO_SERVICE.get(name, name)
        return get_boto_service_name

    _replace(StateTaskService, "_get_boto_service_name", make)


def _sfn_sdk_error_names() -> None:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def from_error(self: Any, env: Any, ex: Exception) -> Any:
            service = self.resource.api_name
            if not isinstance(ex, ClientError):
                return original(self, env, ex)
            error = sfn_error_name(service, str(ex.response["Error"].get("Code", "")))
            if error is None:
                return original(self, env, ex)
            meta = ex.response["ResponseMetadata"]
            cause = (f"{ex.response['Error'].get('Message', '')} (Service: "
                     f"{SFN_SERVICE_ERROR_NAMES[service]}, Status Code: "
                     f"{meta.get('HTTPStatusCode')}, Request ID: {meta.get('RequestId')})")
            return self._get_task_failure_event(env=env, error=error, cause=cause)
        return from_error

    _replace(StateTaskServiceAwsSdk, "_from_error", make)


def aws_timestamp(when: Any) -> Any:
    """A datetime as AWS writes timestamps in the context object; anything else unchanged."""
    from datetime import datetime, timezone

    if not isinstance(when, datetime):
        return when
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sfn_start_time_iso() -> None:
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def get_evaluation_environment(self: Any, *args: Any, **kwargs: Any) -> Any:
            env = original(self, *args, **kwargs)
            execution = env.states.context_object.context_object_data["Execution"]
            execution["StartTime"] = aws_timestamp(execution.get("StartTime"))
            return env
        return get_evaluation_environment

    _replace(ExecutionWorker, "_get_evaluation_environment", make)
