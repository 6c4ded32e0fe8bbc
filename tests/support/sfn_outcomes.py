"""The outcome matrix of both engines: each case is a world, the flags, and the outcome the
same deployment must reach on `abfsm deploy` (the runner) and on `abfsm sfn start --wait` (an
execution of the compiled machine in moto's interpreter).

An `Outcome` is what a user can see after the run, with what differs by nature between the
engines left out (instance ids, run ids, who started it, the wording of an error after its
state name): the exit code, each ASG's desired/max/instance count, the capacities scaled
through, how many of each ASG's instances serve in each load balancer, the lock (gone, a
foreign body, or its record's status/state and the state its error names) and the statuses
of the archived run records.

Used by tests/aws/test_sfn_execution.py (one test per case and engine) and by
benchmarks/sfn_outcomes.py (the side-by-side table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abfsm.record import parse
from tests.support.aws_env import build_env, capacities, instance_ids
from tests.support.sfn_moto import (
    ASGS, BUCKET, ENGINES, SCALED, archived_runs, executing_moto, last_execution, lock_body,
    settings_for,
)

Make = Callable[[str], Any]
FOREIGN_LOCK = b"held by hand\n"


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    asgs: dict[str, tuple[int, int, int]]  # name -> (desired, max, instances)
    scaled: tuple[int, ...]  # the target ASG's desired capacities, step by step
    serving: dict[str, dict[str, int]]  # load balancer -> ASG -> instances serving there
    lock: tuple[str, ...] | None  # None: released; ("foreign", body); (status, state, error's state)
    archived: tuple[str, ...]  # statuses of ENV/runs/*.json


@dataclass(frozen=True)
class Case:
    id: str
    flags: dict[str, Any]
    expected: Outcome
    env: dict[str, Any] = field(default_factory=dict)  # build_env keywords
    arrange: Callable[[Make], None] | None = None  # after build_env
    world: str | None = None  # "frozen" (new instances stay Pending) or "elb-never-healthy"

    def settings(self) -> Any:
        return settings_for(**self.flags)


def _asgs(a: tuple[int, int, int], b: tuple[int, int, int]) -> dict[str, tuple[int, int, int]]:
    return {"qa-a": a, "qa-b": b}


def _foreign_lock(make: Make) -> None:
    make("s3").put_object(Bucket=BUCKET, Key="qa.lock", Body=FOREIGN_LOCK)


def _populate_b(make: Make) -> None:
    make("autoscaling").update_auto_scaling_group(AutoScalingGroupName="qa-b", DesiredCapacity=1)


CASES: list[Case] = [
    Case("standard-ab", {"instance_count": 3},
         Outcome(0, _asgs((0, 10, 0), (3, 10, 3)), (3,), {}, None, ("done",))),
    Case("classic-elb", {"instance_count": 3, "no_elb_check": False},
         Outcome(0, _asgs((0, 10, 0), (3, 10, 3)), (3,), {"qa-public": {"qa-a": 0, "qa-b": 3}},
                 None, ("done",)), env={"classic_elb": True}),
    Case("elb-and-2-target-groups", {"instance_count": 3, "no_elb_check": False},
         Outcome(0, _asgs((0, 10, 0), (3, 10, 3)), (3,),
                 {"qa-public": {"qa-a": 0, "qa-b": 3}, "qa-tg0": {"qa-a": 0, "qa-b": 3},
                  "qa-tg1": {"qa-a": 0, "qa-b": 3}}, None, ("done",)),
         env={"classic_elb": True, "target_groups": 2}),
    Case("stepping-2-4-6", {"instance_count": 6, "instance_count_step": 2},
         Outcome(0, _asgs((0, 10, 0), (6, 10, 6)), (2, 4, 6), {}, None, ("done",))),
    Case("stepping-over-max-size", {"instance_count": 5, "instance_count_step": 2},
         Outcome(0, _asgs((0, 4, 0), (5, 5, 5)), (2, 4, 5), {}, None, ("done",)),
         env={"max_size": 4}),
    Case("instance-count-match", {"instance_count_match": True},
         Outcome(0, _asgs((0, 10, 0), (3, 10, 3)), (3,), {}, None, ("done",)),
         env={"active_count": 3}),
    Case("zero", {"zero": True},
         Outcome(0, _asgs((0, 10, 0), (0, 10, 0)), (), {}, None, ("done",))),
    Case("lock-held-refused", {"instance_count": 3},
         Outcome(3, _asgs((2, 10, 2), (0, 10, 0)), (), {}, ("foreign", FOREIGN_LOCK.decode()), ()),
         arrange=_foreign_lock),
    Case("both-populated-refused", {"instance_count": 3},
         Outcome(3, _asgs((2, 10, 2), (1, 10, 1)), (), {}, None, ("refused",)),
         arrange=_populate_b),
    Case("elb-never-healthy-fails", {"instance_count": 2, "no_elb_check": False},
         Outcome(1, _asgs((2, 10, 2), (2, 10, 2)), (2,), {"qa-public": {"qa-a": 2, "qa-b": 0}},
                 ("failed", "failed", "wait-elb"), ()),
         env={"classic_elb": True}, world="elb-never-healthy"),
    Case("rollback-on-failure", {"instance_count": 2, "rollback_on_failure": True},
         Outcome(1, _asgs((2, 10, 2), (0, 10, 0)), (2,), {}, None, ("rolled-back",)),
         world="frozen"),
]


@dataclass(frozen=True)
class Run:
    """One engine's run of a case: the comparable outcome, and what the engine itself said
    (the local run record's status, or the execution's status and error)."""

    outcome: Outcome
    detail: str


def run_case(case: Case, engine: str) -> Run:
    """A fresh in-process moto (executions enabled), the case's world, one engine's run."""
    from abfsm.emulator import world as world_model

    with executing_moto() as make:
        build_env(make, "qa", **{"active": "a", "active_count": 2, "classic_elb": False,
                                 "bucket": BUCKET, **case.env})
        if case.arrange is not None:
            case.arrange(make)
        if case.world is not None:  # after build_env: the active ASG's instances stay InService
            boot = 0.0 if case.world == "elb-never-healthy" else 40.0
            world_model.activate(world_model.World(world_model.WorldClock(scale=0.0), boot_s=boot))
        try:
            code = ENGINES[engine](case.settings())
            return Run(outcome(make, code), _detail(make, engine))
        finally:
            world_model.deactivate()


def outcome(make: Make, code: int) -> Outcome:
    caps = capacities(make, ASGS)
    return Outcome(
        exit_code=code,
        asgs={n: (c["desired"], c["max"], c["instances"]) for n, c in sorted(caps.items())},
        scaled=tuple(SCALED), serving=_serving(make), lock=_lock(make),
        archived=tuple(sorted(_status(make, key) for key in archived_runs(make))))


def _serving(make: Make) -> dict[str, dict[str, int]]:
    members = {name: set(instance_ids(make, name)) for name in ASGS}
    out: dict[str, dict[str, int]] = {}
    for lb in make("elb").describe_load_balancers()["LoadBalancerDescriptions"]:
        states = make("elb").describe_instance_health(
            LoadBalancerName=lb["LoadBalancerName"])["InstanceStates"]
        up = {s["InstanceId"] for s in states if s["State"] == "InService"}
        out[lb["LoadBalancerName"]] = {name: len(up & ids) for name, ids in members.items()}
    elbv2 = make("elbv2")
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
        up = {h["Target"]["Id"] for h in health["TargetHealthDescriptions"]
              if h["TargetHealth"]["State"] == "healthy"}
        out[tg["TargetGroupName"]] = {name: len(up & ids) for name, ids in members.items()}
    return out


def _lock(make: Make) -> tuple[str, ...] | None:
    body = lock_body(make)
    if body is None:
        return None
    saved = parse(body)[0]
    if saved is None:
        return ("foreign", body.decode())
    return (saved.status, saved.state, (saved.last_error or "").split(":")[0])


def _status(make: Make, key: str) -> str:
    saved = parse(make("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())[0]
    return saved.status if saved is not None else "invalid"


def _detail(make: Make, engine: str) -> str:
    if engine == "local":
        body = lock_body(make)
        keys = archived_runs(make)
        raw = body if body is not None else (
            make("s3").get_object(Bucket=BUCKET, Key=keys[0])["Body"].read() if keys else None)
        saved = parse(raw)[0] if raw is not None else None
        return f"record {saved.status}" if saved is not None else "no record written"
    execution, _ = last_execution(make)
    error = execution.get("error")
    return f"{execution['status']} {error}" if error else str(execution["status"])
