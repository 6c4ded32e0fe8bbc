#!/usr/bin/env python
"""The time abfsm adds to a deployment: deployment wall time - physical minimum.

Runs `abfsm.runner.deploy()` against in-process moto with the emulator's world model
(abfsm.emulator.world): new instances boot, pass the classic ELB's health check, and the old
ones drain (connection draining), so the physical minimum of a deployment is known:

    boot + HealthyThreshold x Interval + draining timeout

(all instances in one step, `--wait-for-scale-down`). abfsm and the world share one clock:
real time plus every sleep abfsm asks for, which is skipped rather than slept. So the wall
time is what a real deployment would take (abfsm's own work and the emulator's answers in
real time, poll intervals as configured), without waiting for it. Calls are every AWS call
the emulator answered (a local lock: no S3 calls).

Usage: python benchmarks/added_latency.py [--counts 4,100] [--polls 30,5]
Prints a markdown table; never fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.aws_env import fake_aws_environment  # noqa: E402

fake_aws_environment()  # no real credentials or config can leak in; boto3 talks to moto only

import structlog  # noqa: E402
from moto import mock_aws  # noqa: E402

from abfsm.aws import connect  # noqa: E402
from abfsm.context import Settings  # noqa: E402
from abfsm.emulator import world as world_model  # noqa: E402
from abfsm.runner import deploy  # noqa: E402
from tests.support.aws_env import CREDENTIALS, REGION, build_env, client_factory  # noqa: E402

BOOT_S = 40.0
THRESHOLD, INTERVAL = 3, 10
DRAINING_S = 60
PHYSICAL_MIN = BOOT_S + THRESHOLD * INTERVAL + DRAINING_S


class SharedTime:
    """Real seconds since start plus every skipped sleep: abfsm's and the world's time."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self._start + self.skipped


class SkippingClock:
    """abfsm's Clock over SharedTime: sleeps are skipped, and counted as time passing."""

    def __init__(self, shared: SharedTime) -> None:
        self._t = shared
        self._epoch = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.slept = 0.0

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._t())

    def monotonic(self) -> float:
        return self._t()

    def sleep(self, seconds: float) -> None:
        self._t.skipped += max(0.0, seconds)
        self.slept += max(0.0, seconds)

    def check_stop(self) -> None:
        return None


@dataclass
class Result:
    count: int
    poll: float
    wall: float
    calls: int
    exit_code: int
    waits: str

    @property
    def added(self) -> float:
        return self.wall - PHYSICAL_MIN

    @property
    def per_minute(self) -> float:
        return self.calls / (self.wall / 60)


def run_one(count: int, poll: float) -> Result:
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # quiet
    shared = SharedTime()
    with mock_aws(), tempfile.TemporaryDirectory() as state_dir:
        make = client_factory()
        world = world_model.activate(world_model.World(world_model.WorldClock(real=shared),
                                                       boot_s=BOOT_S))
        try:
            build_env(make, "qa", active="a", active_count=count, max_size=max(10, count))
            elb = make("elb")
            elb.configure_health_check(LoadBalancerName="qa-public", HealthCheck={
                "Target": "HTTP:8080/", "Interval": INTERVAL, "Timeout": 5,
                "UnhealthyThreshold": 2, "HealthyThreshold": THRESHOLD})
            elb.modify_load_balancer_attributes(LoadBalancerName="qa-public", LoadBalancerAttributes={
                "ConnectionDraining": {"Enabled": True, "Timeout": DRAINING_S}})
            world.advance(3600)  # qa-a has served for an hour
            settings = Settings(environment="qa", elb_names=["qa-public"], instance_count=count,
                                update_timeout=poll, health_check_timeout=1800,
                                wait_for_scale_down=True, log_format="json", state_dir=state_dir,
                                region=REGION)
            services = connect(region=REGION, credentials=CREDENTIALS)
            clock = SkippingClock(shared)
            calls_before = world.calls
            start = shared()
            outcome = deploy(settings, services=services, clock=clock)
            wall = shared() - start
            waits = " / ".join(f"{p['elapsed_s']:.0f}" for p in outcome.path
                               if p["state"] in ("wait-instances", "wait-elb", "drain"))
            return Result(count, poll, wall, world.calls - calls_before, outcome.exit_code, waits)
        finally:
            world_model.deactivate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="4,100")
    parser.add_argument("--polls", default="30,5")
    args = parser.parse_args()
    print(f"physical minimum: boot {BOOT_S:g} s + ELB health check {THRESHOLD} x {INTERVAL} s "
          f"+ connection draining {DRAINING_S} s = {PHYSICAL_MIN:g} s\n")
    print("| instances | --update-timeout | wall time | tool-added latency "
          "| wait-instances / wait-elb / drain | API calls | calls per minute | exit |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|")
    for count in (int(c) for c in args.counts.split(",")):
        for poll in (float(p) for p in args.polls.split(",")):
            r = run_one(count, poll)
            print(f"| {r.count} | {r.poll:g} s | {r.wall:.1f} s | **{r.added:.1f} s** "
                  f"({r.added / r.poll:.2f} poll intervals) | {r.waits} s | {r.calls} | "
                  f"{r.per_minute:.1f} | {r.exit_code} |", flush=True)


if __name__ == "__main__":
    main()
