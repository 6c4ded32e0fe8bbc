"""Corrections to moto where its behaviour would hide bugs that real AWS exposes.

Applied in-process (autouse fixture in tests/conftest.py) and inside the moto_server the
end-to-end tests start (tests/support/moto_server.py). Each has a test in
tests/aws/test_moto_fixes.py proving the correction is in force.

1. MinSize/MaxSize are enforced. Plain moto accepts a DesiredCapacity outside
   [MinSize, MaxSize]; AWS answers ValidationError. Without this, a drain that forgets
   MinSize (the original tool's bug) passes on moto and fails on AWS.
2. Two ASGs sharing one classic ELB. Plain moto, whenever either ASG changes, deregisters
   every ELB instance that is not in *that* ASG, i.e. the other ASG's instances: after a
   correct A/B deploy the ELB would look empty, and "the old ASG keeps serving" or
   "--clean-up picks the ASG serving fewer instances" could not be tested. Here an ASG only
   deregisters instances that no ASG attached to the ELB owns any more.
3. S3 conditional PutObject is atomic. moto checks `If-None-Match`/`If-Match` and then
   writes, without a lock, so two racing writers can both win on the threaded server.
   AWS serialises them: exactly one wins.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_applied = False
_s3_lock = threading.Lock()


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _enforce_min_max()
    _share_classic_elbs()
    _atomic_s3_conditional_put()


def _enforce_min_max() -> None:
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend

    original_update = AutoScalingBackend.update_auto_scaling_group
    original_set = AutoScalingBackend.set_desired_capacity

    @functools.wraps(original_update)
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

    @functools.wraps(original_set)
    def set_desired(self: Any, group_name: str, desired_capacity: Any) -> None:
        group = self.autoscaling_groups[group_name]
        if desired_capacity is not None and not (
                group.min_size <= int(desired_capacity) <= group.max_size):
            raise ValidationError(
                f"New SetDesiredCapacity value {desired_capacity} is below min value "
                f"{group.min_size} for the AutoScalingGroup." if int(desired_capacity) < group.min_size
                else f"New SetDesiredCapacity value {desired_capacity} is above max value "
                     f"{group.max_size} for the AutoScalingGroup.")
        original_set(self, group_name, desired_capacity)

    AutoScalingBackend.update_auto_scaling_group = update  # type: ignore[method-assign]
    AutoScalingBackend.set_desired_capacity = set_desired  # type: ignore[method-assign]


def _share_classic_elbs() -> None:
    from moto.autoscaling.models import AutoScalingBackend
    from moto.elb.exceptions import LoadBalancerNotFoundError

    def update_attached_elbs(self: Any, group_name: str) -> None:
        group = self.autoscaling_groups[group_name]
        if not group.load_balancer_names:
            return
        try:
            elbs = self.elb_backend.describe_load_balancers(names=group.load_balancer_names)
        except LoadBalancerNotFoundError:
            return
        group_ids = {s.instance.id for s in group.active_instances()}
        for elb in elbs:
            owned_elsewhere = {
                s.instance.id
                for other in self.autoscaling_groups.values()
                if other is not group and elb.name in other.load_balancer_names
                for s in other.active_instances()
            }
            current = set(elb.instance_ids)
            self.elb_backend.register_instances(elb.name, group_ids - current,
                                                from_autoscaling=True)
            self.elb_backend.deregister_instances(
                elb.name, current - group_ids - owned_elsewhere, from_autoscaling=True)

    AutoScalingBackend.update_attached_elbs = update_attached_elbs  # type: ignore[method-assign]


def _atomic_s3_conditional_put() -> None:
    from moto.s3.responses import S3Response

    for name in ("put_object", "delete_object"):
        original = getattr(S3Response, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _s3_lock:
                return __original(self, *args, **kwargs)

        setattr(S3Response, name, functools.wraps(original)(locked))
