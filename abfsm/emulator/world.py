"""A world model in time over moto: instances boot, pass health checks, wait in hooks, drain.

moto answers every request from a world without time: an ASG's instances are InService and
Healthy the moment they are asked for, and gone the moment they are not. With a `World`
active (`activate(world)`), the same moto backends behave as AWS does over time (the README
section "The emulator's world model" says what each behaviour follows):

- an instance launches `Pending` and becomes `InService` after `boot_s`; a launch lifecycle
  hook holds it in `Pending:Wait` until CompleteLifecycleAction (CONTINUE: InService;
  ABANDON: terminated and replaced) or the hook's HeartbeatTimeout (its DefaultResult);
- an instance is registered with its group's load balancers when it enters InService; a
  classic ELB reports it OutOfService until HealthyThreshold x Interval of its health check
  has passed, a target group `initial` until HealthyThresholdCount x HealthCheckInterval;
- a group with a warm pool keeps MaxGroupPreparedCapacity (default MaxSize) - desired, at
  least MinSize, instances prepared outside the group (`Warmed:Pending` for the boot time,
  then `Warmed:Stopped`/`Running`/`Hibernated`, listed by DescribeWarmPool); a scale-out
  takes prepared ones first, which enter the group `Pending` and boot in `warm_boot_s`, and
  the pool is refilled;
- an ASG scaled in keeps the instances it removes `Terminating` while they drain (the longest
  of its classic ELBs' connection-draining timeouts and its target groups'
  deregistration_delay.timeout_seconds; targets show `draining`, classic ELBs "deregistration
  currently in progress"), then `Terminating:Wait` under a termination hook, then removes
  them.

Time is a `WorldClock`: world seconds = offset + scale x real seconds (+ `per_call` world
seconds on every AWS call, for tests in virtual time). Scale 0 freezes the world; `advance()`
moves it on. The world ticks before every AWS call, under one lock, so every answer is the
world at that moment. Instances that existed before the world was activated stay as moto
made them (InService, healthy in every load balancer).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ACTIVE", "World", "WorldClock", "activate", "current", "deactivate", "install"]

# Lifecycle states that count towards the desired capacity (Terminating* do not).
ACTIVE = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
# AWS's defaults where a load balancer has no health check configured.
CLASSIC_DEFAULT_THRESHOLD, CLASSIC_DEFAULT_INTERVAL = 10, 30
REGISTERING = "Instance registration is still in progress."
DEREGISTERING = "Instance deregistration currently in progress."

_current: World | None = None
_installed = False


class WorldClock:
    """World seconds: offset + scale x real seconds since the last change, + per-call steps."""

    def __init__(self, scale: float = 1.0, *, per_call: float = 0.0,
                 real: Callable[[], float] = time.monotonic) -> None:
        self._real = real
        self._base = real()
        self._offset = 0.0
        self.scale = float(scale)
        self.per_call = float(per_call)

    def now(self) -> float:
        return self._offset + self.scale * (self._real() - self._base)

    def advance(self, seconds: float) -> None:
        self._offset += max(0.0, float(seconds))

    def set_scale(self, scale: float) -> None:
        self._offset, self._base = self.now(), self._real()
        self.scale = max(0.0, float(scale))

    def on_call(self) -> None:
        self._offset += self.per_call


@dataclass
class _Tracked:
    """One ASG instance the world moves through time."""

    state: Any  # moto's InstanceState (its lifecycle_state is what DescribeAutoScalingGroups shows)
    group: Any  # moto's FakeAutoScalingGroup
    since: float  # world time it entered its current state
    wait_until: float = 0.0  # Pending:Wait / Terminating:Wait: when the hook's heartbeat times out
    hook: Any = None  # the lifecycle hook holding it
    drain_until: float = 0.0  # Terminating: when draining ends
    boot_s: float | None = None  # Pending for this long (None: the world's boot_s)
    pooled: bool = False  # in the group's warm pool, not (yet) in the group

    @property
    def id(self) -> str:
        return str(self.state.instance.id)


class World:
    """The time model: which instances are where in their lifecycle, since when."""

    def __init__(self, clock: WorldClock | None = None, *, boot_s: float = 40.0,
                 warm_boot_s: float = 10.0) -> None:
        self.clock = clock or WorldClock()
        self.boot_s = float(boot_s)
        self.warm_boot_s = float(warm_boot_s)  # a prepared instance leaving the warm pool
        self.lock = threading.RLock()
        self._instances: dict[str, _Tracked] = {}
        self._elb_since: dict[tuple[str, str], float] = {}  # (elb name, id) -> registered at
        self._tg_since: dict[tuple[str, str], float] = {}  # (target group arn, id) -> registered at
        self._elb_draining: dict[tuple[str, str], float] = {}  # -> draining until
        self._tg_draining: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._t: float | None = None  # the event time while the world applies an event
        self.calls = 0  # AWS calls answered while this world was active (query protocols)

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        return self._t if self._t is not None else self.clock.now()

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock.advance(seconds)
            self.tick()

    def reset(self) -> None:
        """Forget every instance (after moto's own reset, whose backends are new)."""
        with self.lock:
            for table in (self._instances, self._elb_since, self._tg_since, self._elb_draining,
                          self._tg_draining):
                table.clear()

    def tick(self) -> None:
        """Apply every event due by now, in time order, each at its own time."""
        with self.lock:
            now = self.clock.now()
            for _ in range(100_000):  # a bound, in case hooks of 0 s abandon and relaunch forever
                due = [(when, t) for t in self._instances.values()
                       if (when := self._deadline(t)) is not None and when <= now]
                if not due:
                    break
                when, tracked = min(due, key=lambda d: d[0])
                self._at(when, tracked)
            for key, until in list(self._elb_draining.items()):
                if until <= now:
                    del self._elb_draining[key]
            for key, (until, _) in list(self._tg_draining.items()):
                if until <= now:
                    del self._tg_draining[key]

    def _at(self, when: float, tracked: _Tracked) -> None:
        self._t = when
        try:
            self._expire(tracked)
        finally:
            self._t = None

    def _deadline(self, t: _Tracked) -> float | None:
        lifecycle = t.state.lifecycle_state
        if lifecycle in ("Pending", "Warmed:Pending"):
            return t.since + (self.boot_s if t.boot_s is None else t.boot_s)
        if lifecycle in ("Pending:Wait", "Terminating:Wait"):
            return t.wait_until
        if lifecycle == "Terminating":
            return t.drain_until
        return None

    def _expire(self, t: _Tracked) -> None:
        lifecycle = t.state.lifecycle_state
        if lifecycle == "Warmed:Pending":
            pool = getattr(t.group, "warm_pool", None)
            state = pool.pool_state if pool is not None else "Stopped"
            t.state.lifecycle_state, t.since = f"Warmed:{state}", self.now()
            if state != "Running":
                t.group.autoscaling_backend.ec2_backend.stop_instances([t.id])
        elif lifecycle == "Pending":
            hook = _hook(t.group, LAUNCHING)
            if hook is None:
                self._in_service(t)
            else:
                self._wait(t, "Pending:Wait", hook)
        elif lifecycle == "Pending:Wait":
            self._launch_result(t, str(t.hook.default_result))
        elif lifecycle == "Terminating":
            hook = _hook(t.group, TERMINATING)
            if hook is None:
                self._terminated(t)
            else:
                self._wait(t, "Terminating:Wait", hook)
        elif lifecycle == "Terminating:Wait":
            self._terminated(t)

    # -- lifecycle -------------------------------------------------------------------------

    def adopt(self, state: Any, group: Any) -> None:
        """A new instance of `group`: Pending from now (the event time within a tick)."""
        state.lifecycle_state = "Pending"
        self._instances[state.instance.id] = _Tracked(state, group, self.now())

    # -- warm pools ------------------------------------------------------------------------

    def pool(self, group: Any) -> list[_Tracked]:
        """The group's warm pool, oldest first."""
        return [t for t in self._instances.values() if t.pooled and t.group is group]

    def take_from_pool(self, group: Any, count: int) -> int:
        """Up to `count` prepared instances (ready ones first) into the group, Pending."""
        ready = sorted(self.pool(group), key=lambda t: (t.state.lifecycle_state == "Warmed:Pending",
                                                        t.since))
        taken = ready[:count]
        for t in taken:
            was = t.state.lifecycle_state
            t.pooled, t.state.lifecycle_state, t.since = False, "Pending", self.now()
            # still booting in the pool: finish that boot; prepared: the quicker warm start
            t.boot_s = self.boot_s if was == "Warmed:Pending" else self.warm_boot_s
            if t.state.instance.state != "running":
                group.autoscaling_backend.ec2_backend.start_instances([t.id])
            group.instance_states.append(t.state)
        return len(taken)

    def fill_pool(self, group: Any, launch: Callable[[int], list[Any]]) -> None:
        """Launch (with moto's `launch(n)` -> new InstanceStates) up to the pool's size."""
        pool = getattr(group, "warm_pool", None)  # not yet set while moto creates the group
        if pool is None:
            return
        cap = pool.max_group_prepared_capacity
        prepared = int(cap) if cap not in (None, -1) else int(group.max_size)
        want = max(int(pool.min_size or 0), prepared - int(group.desired_capacity or 0))
        missing = want - len(self.pool(group))
        for state in launch(missing) if missing > 0 else []:
            state.lifecycle_state = "Warmed:Pending"
            self._instances[state.instance.id] = _Tracked(state, group, self.now(), pooled=True)

    def pool_instances(self, group: Any) -> list[dict[str, Any]]:
        """DescribeWarmPool's Instances."""
        return [{"InstanceId": t.id, "InstanceType": t.state.instance_type,
                 "AvailabilityZone": t.state.availability_zone,
                 "LifecycleState": t.state.lifecycle_state, "HealthStatus": "Healthy",
                 "ProtectedFromScaleIn": False} for t in self.pool(group)]

    def _wait(self, t: _Tracked, lifecycle: str, hook: Any) -> None:
        t.state.lifecycle_state, t.since, t.hook = lifecycle, self.now(), hook
        t.wait_until = t.since + float(hook.heartbeat_timeout)

    def _in_service(self, t: _Tracked) -> None:
        t.state.lifecycle_state, t.since, t.hook = "InService", self.now(), None
        backend = t.group.autoscaling_backend
        backend.update_attached_elbs(t.group.name)
        backend.update_attached_target_groups(t.group.name)
        for name in t.group.load_balancer_names:
            self._elb_since.setdefault((name, t.id), self.now())

    def _launch_result(self, t: _Tracked, result: str) -> None:
        if result == "CONTINUE":
            self._in_service(t)
            return
        # ABANDON: the instance is terminated and the group launches a replacement.
        self._terminated(t)
        t.group.set_desired_capacity(t.group.desired_capacity)

    def leaving(self, t: _Tracked, was_serving: bool) -> None:
        """Scaled in: Terminating while its load balancers drain it."""
        t.state.lifecycle_state, t.since, t.hook = "Terminating", self.now(), None
        drain = 0.0
        for name, timeout in _classic_draining(t.group):
            if was_serving and timeout > 0:
                self._elb_draining[(name, t.id)] = self.now() + timeout
                drain = max(drain, timeout)
        for tg in _target_groups(t.group):
            if t.id in tg.targets:
                drain = max(drain, _deregistration_delay(tg))
        t.drain_until = t.since + drain

    def _terminated(self, t: _Tracked) -> None:
        group = t.group
        group.instance_states = [s for s in group.instance_states if s is not t.state]
        self._instances.pop(t.id, None)
        for table in (self._elb_since, self._tg_since):
            for key in [k for k in table if k[1] == t.id]:
                del table[key]
        group.autoscaling_backend.ec2_backend.terminate_instances([t.id])
        group.autoscaling_backend.update_attached_elbs(group.name)

    def complete(self, group_name: str, hook_name: str, instance_id: str, result: str) -> None:
        """CompleteLifecycleAction: CONTINUE or ABANDON an instance waiting in `hook_name`."""
        t = self._waiting(group_name, hook_name, instance_id)
        if t.state.lifecycle_state == "Pending:Wait":
            self._launch_result(t, result)
        else:
            self._terminated(t)  # a termination hook's result only says whether to run others

    def heartbeat(self, group_name: str, hook_name: str, instance_id: str) -> None:
        """RecordLifecycleActionHeartbeat: the heartbeat timeout starts again from now."""
        t = self._waiting(group_name, hook_name, instance_id)
        t.wait_until = self.now() + float(t.hook.heartbeat_timeout)

    def _waiting(self, group_name: str, hook_name: str, instance_id: str) -> _Tracked:
        from moto.autoscaling.exceptions import ValidationError

        t = self._instances.get(instance_id)
        if (t is None or t.group.name != group_name or t.hook is None
                or t.hook.name != hook_name):
            raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
        return t

    # -- what the load balancers see ------------------------------------------------------

    def classic_state(self, elb: Any, instance: dict[str, Any]) -> dict[str, Any]:
        """One entry of DescribeInstanceHealth, as the world sees it now."""
        key = (elb.name, instance["InstanceId"])
        if key in self._elb_draining and instance["State"] in ("Unknown", "InService"):
            return {**instance, "State": "InService", "ReasonCode": "ELB",
                    "Description": DEREGISTERING}
        since = self._elb_since.get(key)
        if instance["State"] == "InService" and since is not None:
            threshold, interval = _classic_check(elb)
            if self.now() < since + threshold * interval:
                return {**instance, "State": "OutOfService", "ReasonCode": "ELB",
                        "Description": REGISTERING}
        return instance

    def classic_draining(self, elb_name: str) -> list[str]:
        return sorted(iid for (name, iid) in self._elb_draining if name == elb_name)

    def target_health(self, tg: Any, target_id: str) -> tuple[str, str, str] | None:
        """(state, reason, description) where the world overrides moto's answer, else None."""
        key = (tg.arn, target_id)
        if key in self._tg_draining:
            return ("draining", "Target.DeregistrationInProgress",
                    "Target deregistration is in progress")
        since = self._tg_since.get(key)
        if since is not None and target_id in tg.targets:
            wait = int(tg.healthy_threshold_count) * int(tg.health_check_interval_seconds)
            if self.now() < since + wait:
                return ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
        return None

    def draining_targets(self, tg: Any) -> list[dict[str, Any]]:
        return [target for (arn, _), (_, target) in self._tg_draining.items() if arn == tg.arn]

    def update_target_groups(self, backend: Any, group: Any) -> None:
        """Register a group's InService instances, deregister (draining) its Terminating ones."""
        serving = sorted(s.instance.id for s in group.instance_states
                         if s.lifecycle_state == "InService")
        leaving = {s.instance.id for s in group.instance_states if s.lifecycle_state not in ACTIVE}
        for tg in _target_groups(group):
            new = [iid for iid in serving if iid not in tg.targets]
            if new:
                backend.elbv2_backend.register_targets(tg.arn, [{"Id": i, "Port": tg.port} for i in new])
                for iid in new:
                    self._tg_since[(tg.arn, iid)] = self.now()
            for iid in sorted(leaving & set(tg.targets)):
                target = dict(tg.targets[iid])
                tg.deregister([{"Id": iid}])
                self._tg_draining[(tg.arn, iid)] = (self.now() + _deregistration_delay(tg), target)
                self._tg_since.pop((tg.arn, iid), None)

    def snapshot(self) -> dict[str, Any]:
        """What the control endpoint shows: the clock and every instance the world moves."""
        with self.lock:
            return {"now": round(self.clock.now(), 3), "scale": self.clock.scale,
                    "per_call": self.clock.per_call, "boot_s": self.boot_s,
                    "warm_boot_s": self.warm_boot_s,
                    "instances": {t.id: {"group": t.group.name, "state": t.state.lifecycle_state,
                                         "since": round(t.since, 3), "warm_pool": t.pooled}
                                  for t in self._instances.values()}}


def _hook(group: Any, transition: str) -> Any:
    hooks = [h for h in group.autoscaling_backend.lifecycle_hooks.values()
             if h.auto_scaling_group_name == group.name and h.lifecycle_transition == transition]
    return min(hooks, key=lambda h: h.name) if hooks else None


def _classic_check(elb: Any) -> tuple[int, int]:
    check = elb.health_check
    if check is None:
        return CLASSIC_DEFAULT_THRESHOLD, CLASSIC_DEFAULT_INTERVAL
    return int(check.healthy_threshold), int(check.interval)


def _classic_draining(group: Any) -> list[tuple[str, float]]:
    out = []
    backend = group.autoscaling_backend.elb_backend
    for name in group.load_balancer_names:
        elb = backend.get_load_balancer(name)
        draining = (elb.attributes.get("connection_draining") or {}) if elb is not None else {}
        # moto keeps the request's own keys (Enabled, Timeout) beside its lower-case defaults
        enabled = draining.get("Enabled", draining.get("enabled", False))
        if str(enabled).lower() == "true":
            out.append((name, float(draining.get("Timeout", draining.get("timeout", 300)))))
    return out


def _target_groups(group: Any) -> list[Any]:
    tgs = group.autoscaling_backend.elbv2_backend.target_groups
    return [tgs[arn] for arn in group.target_group_arns if arn in tgs]


def _deregistration_delay(tg: Any) -> float:
    return float(tg.attributes.get("deregistration_delay.timeout_seconds", 300))


# -- activation and the patches over moto ---------------------------------------------------

def current() -> World | None:
    return _current


def activate(world: World) -> World:
    """Make `world` the one every moto backend of this process follows (installs the hooks)."""
    global _current
    install()
    _current = world
    return world


def deactivate() -> None:
    global _current
    _current = None


def install() -> None:
    """Hook the world into moto (once per process). Inactive until `activate()`."""
    global _installed
    if _installed:
        return
    _installed = True
    from abfsm.emulator import fixes

    fixes.apply()
    _tick_before_every_call()
    _pending_counts_as_active()
    _launch_pending()
    _scale_in_terminating()
    _target_groups_follow_lifecycle()
    _classic_health_over_time()
    _target_health_over_time()
    _lifecycle_actions()
    _warm_pools()


def _wrap(cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(cls, name)
    setattr(cls, name, functools.wraps(original)(make(original)))


def _tick_before_every_call() -> None:
    from moto.core.responses import BaseResponse

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def call_action(self: Any) -> Any:
            world = _current
            if world is None:
                return original(self)
            with world.lock:
                world.calls += 1
                world.clock.on_call()
                world.tick()
                return original(self)
        return call_action

    _wrap(BaseResponse, "call_action", make)


def _pending_counts_as_active() -> None:
    from moto.autoscaling.models import FakeAutoScalingGroup

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def active_instances(self: Any) -> Any:
            if _current is None:
                return original(self)
            return [s for s in self.instance_states if s.lifecycle_state in ACTIVE]
        return active_instances

    _wrap(FakeAutoScalingGroup, "active_instances", make)


def _launch_pending() -> None:
    from moto.autoscaling.models import FakeAutoScalingGroup

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def replace(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
            world = _current
            if world is None:
                original(self, count_needed, propagated_tags)
                return

            def launch(count: int) -> list[Any]:
                before = len(self.instance_states)
                original(self, count, dict(propagated_tags))
                new: list[Any] = self.instance_states[before:]
                del self.instance_states[before:]
                return new

            count_needed -= world.take_from_pool(self, count_needed)
            for state in launch(count_needed) if count_needed > 0 else []:
                self.instance_states.append(state)
                world.adopt(state, self)
            world.fill_pool(self, launch)
        return replace

    _wrap(FakeAutoScalingGroup, "replace_autoscaling_group_instances", make)


def _scale_in_terminating() -> None:
    from moto.autoscaling.models import FakeAutoScalingGroup

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def set_desired_capacity(self: Any, new_capacity: Any) -> None:
            world = _current
            if world is None:
                original(self, new_capacity)
                return
            # moto removes (and terminates) what it scales in: let it choose among the active
            # instances only, keep its EC2 instances running, and keep them here Terminating.
            leaving = [s for s in self.instance_states if s.lifecycle_state not in ACTIVE]
            self.instance_states = [s for s in self.instance_states if s.lifecycle_state in ACTIVE]
            before = list(self.instance_states)
            ec2 = self.autoscaling_backend.ec2_backend
            ec2.terminate_instances = lambda ids: []  # per-object; the class method is moto's
            try:
                original(self, new_capacity)
            finally:
                del ec2.terminate_instances
            removed = [s for s in before if s not in self.instance_states]
            self.instance_states = self.instance_states + removed + leaving
            for state in removed:
                tracked = world._instances.get(state.instance.id)
                if tracked is None:
                    tracked = world._instances[state.instance.id] = _Tracked(state, self, world.now())
                was_serving = state.lifecycle_state == "InService"
                world.leaving(tracked, was_serving)
            if removed and self.name in self.autoscaling_backend.autoscaling_groups:
                self.autoscaling_backend.update_attached_target_groups(self.name)
        return set_desired_capacity

    _wrap(FakeAutoScalingGroup, "set_desired_capacity", make)


def _target_groups_follow_lifecycle() -> None:
    from moto.autoscaling.models import AutoScalingBackend

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def update_attached_target_groups(self: Any, group_name: str) -> None:
            world = _current
            if world is None:
                original(self, group_name)
                return
            world.update_target_groups(self, self.autoscaling_groups[group_name])
        return update_attached_target_groups

    _wrap(AutoScalingBackend, "update_attached_target_groups", make)


def _classic_health_over_time() -> None:
    from moto.elb.responses import ELBResponse

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def describe_instance_health(self: Any) -> Any:
            result = original(self)
            world = _current
            if world is None:
                return result
            elb = self.elb_backend.get_load_balancer(self._get_param("LoadBalancerName"))
            asked = self._get_param("Instances", [])
            states = [world.classic_state(elb, s) for s in result.result["InstanceStates"]]
            if not asked:
                listed = {s["InstanceId"] for s in states}
                states += [{"InstanceId": iid, "State": "InService", "ReasonCode": "ELB",
                            "Description": DEREGISTERING}
                           for iid in world.classic_draining(elb.name) if iid not in listed]
            result.result["InstanceStates"] = states
            return result
        return describe_instance_health

    _wrap(ELBResponse, "describe_instance_health", make)


def _target_health_over_time() -> None:
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

    def make_health(original: Callable[..., Any]) -> Callable[..., Any]:
        def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            world = _current
            seen = world.target_health(self, target["Id"]) if world is not None else None
            if seen is None:
                return original(self, target, ec2_backend)
            return FakeHealthStatus(target["Id"], target.get("Port", self.port),
                                    self.health_check_port, *seen)
        return health_for

    def make_describe(original: Callable[..., Any]) -> Callable[..., Any]:
        def describe_target_health(self: Any, target_group_arn: str, targets: Any) -> Any:
            world = _current
            tg = self.target_groups.get(target_group_arn)
            if world is None or tg is None or targets:
                return original(self, target_group_arn, targets)
            return original(self, target_group_arn,
                            list(tg.targets.values()) + world.draining_targets(tg))
        return describe_target_health

    _wrap(FakeTargetGroup, "health_for", make_health)
    _wrap(ELBv2Backend, "describe_target_health", make_describe)


def _lifecycle_actions() -> None:
    """CompleteLifecycleAction and RecordLifecycleActionHeartbeat, which moto lacks."""
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    def _args(self: Any) -> tuple[str, str, str]:
        group = self._get_param("AutoScalingGroupName")
        hook = self._get_param("LifecycleHookName")
        iid = self._get_param("InstanceId")
        if not iid:
            raise ValidationError("InstanceId is required (this emulator issues no "
                                  "LifecycleActionToken)")
        return group, hook, iid

    def complete_lifecycle_action(self: Any) -> Any:
        group, hook, iid = _args(self)
        result = self._get_param("LifecycleActionResult")
        if result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(f"LifecycleActionResult must be CONTINUE or ABANDON, got {result!r}")
        world = _current
        if world is None:  # moto's instant world: nothing ever waits in a hook
            raise ValidationError(f"No active Lifecycle Action found with instance ID {iid}")
        world.complete(group, hook, iid, result)
        return EmptyResult()

    def record_lifecycle_action_heartbeat(self: Any) -> Any:
        group, hook, iid = _args(self)
        world = _current
        if world is None:
            raise ValidationError(f"No active Lifecycle Action found with instance ID {iid}")
        world.heartbeat(group, hook, iid)
        return EmptyResult()

    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action  # type: ignore[attr-defined]
    AutoScalingResponse.record_lifecycle_action_heartbeat = (  # type: ignore[attr-defined]
        record_lifecycle_action_heartbeat)


def _warm_pools() -> None:
    """PutWarmPool fills the pool; DescribeWarmPool lists its instances (moto lists none)."""
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse

    def make_put(original: Callable[..., Any]) -> Callable[..., Any]:
        def put_warm_pool(self: Any, group_name: str, **kwargs: Any) -> None:
            original(self, group_name=group_name, **kwargs)
            world = _current
            group = self.autoscaling_groups.get(group_name)
            if world is not None and group is not None:
                with world.lock:
                    group.replace_autoscaling_group_instances(0, group.get_propagated_tags())
        return put_warm_pool

    def make_describe(original: Callable[..., Any]) -> Callable[..., Any]:
        def describe_warm_pool(self: Any) -> Any:
            result = original(self)
            world = _current
            group = self.autoscaling_backend.autoscaling_groups.get(
                self._get_param("AutoScalingGroupName"))
            if world is not None and group is not None:
                result.result["Instances"] = world.pool_instances(group)
            return result
        return describe_warm_pool

    _wrap(AutoScalingBackend, "put_warm_pool", make_put)
    _wrap(AutoScalingResponse, "describe_warm_pool", make_describe)
