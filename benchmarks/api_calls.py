#!/usr/bin/env python
"""AWS API calls and tool time of real A/B deployments against moto, in-process.

Runs `abfsm.runner.deploy()` (the code path of `abfsm deploy` and `abfsm demo`) against
moto's in-process mock (with the test suite's moto corrections), through a boto3 Session
whose event hooks count every API call by service and action and time it. The clock is a
counting fake: a configured sleep costs nothing and is only recorded, so the measured wall
time *is* the tool's wall time excluding configured sleeps.

Time is split into:
  client setup   building boto3 clients (loading service models), once per run
  botocore       inside boto3/botocore calls, outside moto (validate, serialise, sign, parse)
  moto           inside moto's request handler (the emulated AWS)
  abfsm          everything else: the tool itself (spec, machine, decisions, lock/record
                 writes, logging)

Scenarios: (a) 4 instances, healthy at once, no lock bucket; (b) the same with a lock bucket;
(c) 8 instances (the default --instance-count); (d) 4 and 1000 instances that stay not ready
for the first K polls of wait-instances and wait-elb, to show calls per poll stay flat.

Usage: python benchmarks/api_calls.py [--big 1000] [--polls 3] [--only a,b,c,d]
Prints numbers and PASS/FAIL against issue 2's targets; never exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.aws_env import fake_aws_environment  # noqa: E402

fake_aws_environment()  # no real credentials or config can leak in; boto3 talks to moto only

import boto3  # noqa: E402
import structlog  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import botocore_stubber  # noqa: E402

from abfsm import log as abfsm_log  # noqa: E402
from abfsm.aws import connect  # noqa: E402
from abfsm.context import Settings  # noqa: E402
from abfsm.lock import Lock  # noqa: E402
from abfsm.runner import deploy  # noqa: E402
from abfsm.emulator import fixes as moto_fixes  # noqa: E402
from tests.fakes import FakeClock  # noqa: E402
from tests.support.aws_env import REGION, build_env, client_factory  # noqa: E402

BASELINE = "original deploy.py, 4 instances healthy at once, 1 s poll interval: 9 API calls, 4.6 s"
TARGET_CALLS = 5
TARGET_TOOL_MS = 1000.0
WAIT_STATES = ("wait-instances", "wait-elb")


# --------------------------------------------------------------------------- measurement

@dataclass(frozen=True)
class Span:
    """A duration on two clocks: wall (perf_counter) and this process's CPU (process_time).
    CPU time barely moves when other processes load the machine; wall time does."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Span) -> Span:
        return Span(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Span) -> Span:
        return Span(self.wall - other.wall, self.cpu - other.cpu)


def tick() -> Span:
    return Span(time.perf_counter(), time.process_time())


def spans() -> defaultdict:
    return defaultdict(Span)


class _Probes:
    """Class-level patches, installed once: moto's request handler and the lock's writes."""

    active: Meter | None = None

    @classmethod
    def install(cls) -> None:
        original = botocore_stubber.BotocoreStubber.process_request

        def timed(self: Any, request: Any) -> Any:
            meter = cls.active
            if meter is None or not meter.in_call:
                return original(self, request)
            t0 = tick()
            try:
                return original(self, request)
            finally:
                meter.moto += tick() - t0

        botocore_stubber.BotocoreStubber.process_request = timed  # type: ignore[method-assign]
        for name in ("acquire", "save", "release"):
            cls._time_lock(name)

    @classmethod
    def _time_lock(cls, name: str) -> None:
        """Time the lock/run-record writes (local: write + fsync + rename; S3: PutObject),
        excluding the AWS calls they make."""
        original = getattr(Lock, name)

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            meter = cls.active
            t0 = tick()
            aws0 = meter.call if meter else Span()
            try:
                return original(self, *args, **kwargs)
            finally:
                if meter is not None:
                    spent = tick() - t0 - (meter.call - aws0)
                    meter.record += spent
                    meter.state_record[meter.state] += spent

        setattr(Lock, name, timed)


@dataclass
class Meter:
    """Counts and times one run's API calls and follows the machine's state from its logs."""

    state: str = "locked"
    calls: Counter = field(default_factory=Counter)  # (service, action) -> n
    calls_in_state: Counter = field(default_factory=Counter)  # (state, service:action) -> n
    polls: Counter = field(default_factory=Counter)  # state -> wait.progress events
    sleeps: Counter = field(default_factory=Counter)  # state -> configured sleeps
    state_total: defaultdict = field(default_factory=spans)  # state -> Span, harness included
    state_call: defaultdict = field(default_factory=spans)  # AWS calls + client setup
    state_harness: defaultdict = field(default_factory=spans)
    state_record: defaultdict = field(default_factory=spans)
    path: list[str] = field(default_factory=list)
    in_call: bool = False
    call_started: Span = Span()
    call_params: dict = field(default_factory=dict)
    call: Span = Span()  # inside boto3/botocore calls, moto included
    moto: Span = Span()
    client: Span = Span()  # building boto3 clients
    record: Span = Span()  # inside Lock.acquire/save/release, its AWS calls excluded
    harness: Span = Span()  # the benchmark's own fault injection, excluded from tool time
    state_entered: Span = Span()
    after_call: list[Any] = field(default_factory=list)  # harness hooks (service, action, params)

    # boto3 event handlers -------------------------------------------------------------
    def on_start(self, params: Any = None, **_: Any) -> None:
        self.in_call = True
        self.call_params = dict(params or {})  # the API parameters, for the harness hooks
        self.call_started = tick()

    def on_before_call(self, model: Any, **_: Any) -> None:
        key = (model.service_model.service_name, model.name)
        self.calls[key] += 1
        self.calls_in_state[(self.state, f"{key[0]}:{key[1]}")] += 1

    def on_end(self, model: Any, **_: Any) -> None:
        spent = tick() - self.call_started
        self.call += spent
        self.state_call[self.state] += spent
        self.in_call = False
        for hook in self.after_call:
            with self.injecting():
                hook(model.service_model.service_name, model.name, self.call_params)

    def attach(self, session: boto3.Session) -> None:
        events = session.events
        events.register("provide-client-params", self.on_start)
        events.register("before-call", self.on_before_call)
        events.register("after-call", self.on_end)
        events.register("after-call-error", self.on_end)
        make_client = session.client

        def timed_client(*args: Any, **kwargs: Any) -> Any:
            t0 = tick()
            try:
                return make_client(*args, **kwargs)
            finally:
                spent = tick() - t0
                self.client += spent
                self.state_call[self.state] += spent  # not the tool's per-poll work either

        session.client = timed_client  # type: ignore[method-assign]

    # structlog processor: follow the machine ------------------------------------------
    def processor(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        name = event.get("event")
        if name == "wait.progress":
            self.polls[self.state] += 1
        elif name == "transition":
            self.enter(event["dst"])
        return event

    def enter(self, state: str | None) -> None:
        now = tick()
        self.state_total[self.state] += now - self.state_entered
        self.state_entered = now
        if state is not None:
            self.path.append(self.state)
            self.state = state

    def own(self, state: str) -> Span:
        """The tool's own time in a state: all of it minus AWS calls and fault injection."""
        return self.state_total[state] - self.state_call[state] - self.state_harness[state]

    def injecting(self) -> Any:
        meter = self

        class _Timed:
            def __enter__(self) -> None:
                self.t0 = tick()

            def __exit__(self, *exc: Any) -> None:
                spent = tick() - self.t0
                meter.harness += spent
                meter.state_harness[meter.state] += spent

        return _Timed()


class _Discard(io.TextIOBase):
    """Where the JSON log lines go: rendered in full (real work), then thrown away."""

    def write(self, text: str) -> int:
        return len(text)


def configure_logging(meter: Meter) -> None:
    abfsm_log.reset()
    abfsm_log.configure("json", stream=_Discard())
    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[meter.processor, *processors])


# --------------------------------------------------------------------------- scenarios

@dataclass
class Result:
    title: str
    size: int
    meter: Meter
    total: Span  # the whole deploy() call, fault injection included
    exit_code: int
    status: str
    sleeps: list[float]
    setup_s: float

    @property
    def tool(self) -> Span:
        """Tool time excluding configured sleeps (they cost nothing on the counting clock)."""
        return self.total - self.meter.harness

    @property
    def own(self) -> Span:
        return self.tool - self.meter.call - self.meter.client

    @property
    def total_calls(self) -> int:
        return sum(self.meter.calls.values())

    def calls_in(self, state: str) -> int:
        return sum(n for (s, _), n in self.meter.calls_in_state.items() if s == state)


def run_scenario(title: str, *, count: int, active_count: int, lock_bucket: bool = False,
                 not_ready_polls: int = 0, interval: float = 1.0) -> Result:
    with mock_aws(), tempfile.TemporaryDirectory(prefix="abfsm-bench-") as state_dir:
        t0 = time.perf_counter()
        make = client_factory()
        bucket = "bench-locks" if lock_bucket else None
        build_env(make, "bench", active="a", active_count=active_count,
                  max_size=max(10, count, active_count), bucket=bucket)
        setup_s = time.perf_counter() - t0

        meter = Meter()
        _Probes.active = meter
        clock = FakeClock()
        if not_ready_polls:
            _inject_slow_start(meter, clock, make, not_ready_polls)
        session = boto3.Session(region_name=REGION, aws_access_key_id="testing",
                                aws_secret_access_key="testing")
        meter.attach(session)
        services = connect(region=REGION, session=session)
        settings = Settings(environment="bench", instance_count=count, update_timeout=interval,
                            health_check_timeout=600.0, lock_bucket_name=bucket,
                            state_dir=state_dir, log_format="json")
        configure_logging(meter)
        # moto's heap (AMI and instance-type catalogues, every emulated resource) is large;
        # a full garbage collection scanning it costs 100-300 ms, which a real abfsm process
        # talking to AWS never pays. Freeze what exists now so collections during the run
        # only scan what the run allocates.
        gc.collect()
        gc.freeze()
        meter.state_entered = start = tick()
        try:
            outcome = deploy(settings, services=services, clock=clock)
        finally:
            total = tick() - start
            gc.unfreeze()
            meter.enter(None)
            _Probes.active = None
            abfsm_log.reset()
        return Result(title, count, meter, total, outcome.exit_code, outcome.status,
                      list(clock.sleeps), setup_s)


def median_run(repeat: int, title: str, **kwargs: Any) -> Result:
    """Run a scenario `repeat` times; report the run with the median tool wall time."""
    runs = sorted((run_scenario(title, **kwargs) for _ in range(repeat)),
                  key=lambda r: r.tool.wall)
    chosen = runs[len(runs) // 2]
    if repeat > 1:
        chosen.title += (f" [median of {repeat} runs by tool wall time; range "
                         f"{ms(runs[0].tool.wall)}-{ms(runs[-1].tool.wall)} ms]")
    return chosen


def _inject_slow_start(meter: Meter, clock: FakeClock, make: Any, k: int) -> None:
    """Target instances: Pending for the first k polls of wait-instances, then InService
    but OutOfService in the ELB (stopped) for the first k polls of wait-elb."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION]
    ec2 = make("ec2")  # not the metered session: these calls are not the tool's
    target: dict[str, Any] = {}

    def after_scale(service: str, action: str, params: dict[str, Any]) -> None:
        if (service, action) != ("autoscaling", "UpdateAutoScalingGroup"):
            return
        if not params.get("DesiredCapacity"):
            return
        group = backend.autoscaling_groups[params["AutoScalingGroupName"]]
        target["group"] = group
        for state in group.instance_states:
            state.lifecycle_state = "Pending"
        ids = [s.instance.id for s in group.instance_states]
        target["ids"] = ids
        for chunk in range(0, len(ids), 500):
            ec2.stop_instances(InstanceIds=ids[chunk:chunk + 500])

    def after_sleep() -> None:
        with meter.injecting():
            state = meter.state
            meter.sleeps[state] += 1
            if state == "wait-instances" and meter.sleeps[state] == k:
                for s in target["group"].instance_states:
                    s.lifecycle_state = "InService"
            elif state == "wait-elb" and meter.sleeps[state] == k:
                ids = target["ids"]
                for chunk in range(0, len(ids), 500):
                    ec2.start_instances(InstanceIds=ids[chunk:chunk + 500])

    meter.after_call.append(after_scale)
    clock.on_sleep(after_sleep)


# --------------------------------------------------------------------------- reporting

def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def both(span: Span) -> str:
    return f"{ms(span.wall)} / {ms(span.cpu)}"


def report(r: Result) -> None:
    m = r.meter
    print(f"\n## {r.title}")
    print(f"exit {r.exit_code} ({r.status}); path {' -> '.join([*m.path, m.state])}")
    print(f"configured sleeps: {len(r.sleeps)} x {r.sleeps[0] if r.sleeps else 0:g} s "
          f"= {sum(r.sleeps):g} s (instant on the counting clock)"
          f"; environment setup {r.setup_s:.1f} s (not measured)")
    print()
    print("| service:action | calls |")
    print("|---|---:|")
    for (service, action), n in sorted(m.calls.items()):
        print(f"| {service}:{action} | {n} |")
    print(f"| **total** | **{r.total_calls}** |")
    print()
    print("times are wall ms / CPU ms; 'own' = the tool's time minus AWS calls "
          "(and client setup); record writes are part of 'own'")
    print()
    print("| state | calls | polls | calls/poll | tool | AWS calls | own | own per poll "
          "| record writes per poll |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for state in dict.fromkeys([*m.path, m.state]):
        polls = m.polls.get(state, 0)
        calls = r.calls_in(state)
        tool = m.state_total[state] - m.state_harness[state]
        own = m.own(state)
        per_poll = f"{calls / polls:.2f}" if polls else "-"
        own_pp = f"{ms(own.wall / polls)} / {ms(own.cpu / polls)}" if polls else "-"
        rec = m.state_record[state]
        rec_pp = f"{ms(rec.wall / polls)} / {ms(rec.cpu / polls)}" if polls else "-"
        print(f"| {state} | {calls} | {polls or '-'} | {per_poll} | {both(tool)} "
              f"| {both(m.state_call[state])} | {both(own)} | {own_pp} | {rec_pp} |")
    polls = sum(m.polls.values())
    print()
    print(f"tool time excluding configured sleeps: {ms(r.tool.wall)} ms wall, "
          f"{ms(r.tool.cpu)} ms CPU")
    print(f"  client setup {both(m.client)} | botocore {both(m.call - m.moto)} | "
          f"moto {both(m.moto)} | abfsm {both(r.own)} "
          f"(of which lock/run-record writes {both(m.record)})")
    if polls:
        wait = sum((m.own(s) for s in WAIT_STATES), Span())
        wait_polls = sum(m.polls[s] for s in WAIT_STATES)
        print(f"  abfsm's own time per poll: whole run (tool - AWS calls - client setup) / "
              f"{polls} polls = {ms(r.own.wall / polls)} ms wall, {ms(r.own.cpu / polls)} ms CPU"
              f"; wait states only {ms(wait.wall / wait_polls)} ms wall, "
              f"{ms(wait.cpu / wait_polls)} ms CPU")


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1000, help="instances for the large run of (d)")
    parser.add_argument("--polls", type=int, default=3,
                        help="(d): polls each wait state sees not ready before ready")
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated scenarios")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of (a), (b), (c); the median run is reported")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    moto_fixes.apply()
    _Probes.install()
    began = time.perf_counter()
    print("# abfsm API-call benchmark (moto in-process, counting clock, --update-timeout 1)")
    print(f"python {sys.version.split()[0]}, boto3 {boto3.__version__}, moto "
          f"{_moto_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"baseline: {BASELINE}")

    # Warm-up run (not reported): the first deployment in a process pays one-off costs
    # (lazy imports inside abfsm, botocore and moto) that a CLI run pays at start-up;
    # startup.py measures start-up separately.
    run_scenario("warm-up", count=4, active_count=4)
    summary: list[str] = []

    def summarise(label: str, r: Result, target: str = "-") -> None:
        polls = sum(r.meter.polls[s] for s in WAIT_STATES)
        per_poll = " + ".join(f"{r.calls_in(s) / r.meter.polls[s]:g}" for s in WAIT_STATES
                              if r.meter.polls[s])
        own = sum((r.meter.own(s) for s in WAIT_STATES), Span())
        own_pp = f"{ms(own.cpu / polls)}" if polls else "-"
        summary.append(f"| {label} | {r.total_calls} | {polls} | {per_poll} | "
                       f"{ms(r.tool.wall)} | {ms(r.tool.cpu)} | {own_pp} | {target} |")

    if "a" in only:
        r = median_run(args.repeat, "(a) 4 instances healthy at once, no lock bucket "
                       "(local state dir)", count=4, active_count=4)
        report(r)
        ok_calls = r.total_calls <= TARGET_CALLS
        ok_time = r.tool.wall * 1000 < TARGET_TOOL_MS
        print(f"target: <= {TARGET_CALLS} API calls: {verdict(ok_calls)} ({r.total_calls}); "
              f"well under 1 s of tool time: {verdict(ok_time)} ({ms(r.tool.wall)} ms); "
              f"exit 0: {verdict(r.exit_code == 0)}")
        print(f"vs. baseline: {r.total_calls} calls instead of 9; {ms(r.tool.wall)} ms "
              "instead of 4600 ms (the first check of every wait is immediate)")
        summarise("4 instances healthy at once, local lock", r,
                  f"<= 5 calls, < 1 s: {verdict(ok_calls and ok_time)}")
    if "b" in only:
        r = median_run(args.repeat, "(b) 4 instances healthy at once, with a lock bucket",
                       count=4, active_count=4, lock_bucket=True)
        report(r)
        s3 = sum(n for (svc, _), n in r.meter.calls.items() if svc == "s3")
        by_action = ", ".join(f"{a} x{n}" for (svc, a), n in sorted(r.meter.calls.items())
                              if svc == "s3")
        print(f"extra S3 calls for the lock bucket: {s3} ({by_action}): the lock's create "
              "(PutObject If-None-Match), one run-record save per state entered (PutObject "
              "If-Match; the wait states' 2 calls/poll above are their describe + that save), "
              "the archived run record and the release (DeleteObject If-Match); every poll "
              "after a wait's first adds one heartbeat PutObject")
        summarise(f"4 instances healthy at once, S3 lock bucket (+{s3} S3)", r)
    if "c" in only:
        r = median_run(args.repeat, "(c) 8 instances healthy at once (default --instance-count), "
                       "no lock bucket", count=8, active_count=8)
        report(r)
        summarise("8 instances healthy at once, local lock", r)
    if "d" in only:
        k = args.polls
        results = {}
        for size in (4, args.big):
            r = run_scenario(f"(d) {size} instances, not ready for the first {k} polls of each "
                             "wait state, no lock bucket",
                             count=size, active_count=size, not_ready_polls=k)
            report(r)
            results[size] = r
        small, big = results[4], results[args.big]
        print(f"\n## (d) calls per poll, 4 vs {args.big} instances")
        print(f"| wait state | polls | calls/poll at 4 | calls/poll at {args.big} "
              f"| own CPU ms/poll at 4 | own CPU ms/poll at {args.big} |")
        print("|---|---:|---:|---:|---:|---:|")
        flat = True
        for s in WAIT_STATES:
            cp = [r.calls_in(s) / max(1, r.meter.polls[s]) for r in (small, big)]
            own = [r.meter.own(s).cpu / max(1, r.meter.polls[s]) for r in (small, big)]
            flat = flat and cp[0] == cp[1] and small.meter.polls[s] == big.meter.polls[s]
            print(f"| {s} | {big.meter.polls[s]} | {cp[0]:g} | {cp[1]:g} | {ms(own[0])} "
                  f"| {ms(own[1])} |")
        print(f"target: calls per poll flat from 4 to {args.big} instances: {verdict(flat)}")
        for size, r in results.items():
            summarise(f"{size} instances, not ready for {k} polls per wait state", r,
                      f"flat calls/poll: {verdict(flat)}")

    print("\n## summary")
    print("| scenario | API calls | polls | calls/poll (wait-instances + wait-elb) "
          "| tool wall ms | tool CPU ms | abfsm own CPU ms per poll | target |")
    print("|---|---:|---:|---|---:|---:|---:|---|")
    for line in summary:
        print(line)
    print("(tool = deploy() excluding configured sleeps; own CPU per poll = CPU time in the wait "
          "states minus AWS calls, / polls: abfsm's own work per poll incl. its run-record "
          "heartbeat)")
    print(f"\nbenchmark wall time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
