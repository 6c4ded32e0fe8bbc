#!/usr/bin/env python
"""Both engines side by side: each case of the outcome matrix run by `abfsm deploy` (the local
runner) and by `abfsm sfn deploy` + `abfsm sfn start --wait` (an execution of the compiled
machine in moto's ASL interpreter), plus the throttling cases only the execution has.

The cases, their worlds and the compared outcome (exit code, ASG counts, capacities scaled
through, what serves in each load balancer, the lock, the archived records) are
tests/support/sfn_outcomes.py's, the ones tests/aws/test_sfn_execution.py asserts. Each run
gets a fresh in-process moto with the emulator's corrections. Prints one markdown table;
never fails (a differing outcome shows as "no" in the last column). No timings asserted.

Usage: python benchmarks/sfn_outcomes.py [CASE_ID ...]     (about 2 minutes for all)
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.aws_env import fake_aws_environment  # noqa: E402

fake_aws_environment()  # no real credentials or config can leak in; boto3 talks to moto only

from tests.support.aws_env import build_env  # noqa: E402
from tests.support.sfn_moto import (  # noqa: E402
    BUCKET, executing_moto, fast_retries, last_execution, run_sfn, throttled,
)
from tests.support.sfn_outcomes import CASES, Case, Outcome, Run, outcome, run_case  # noqa: E402

THROTTLED = [  # (row, API, throttled calls (None: all), Retry attempts compiled)
    ("throttled UpdateAutoScalingGroup x2", "UpdateAutoScalingGroup", 2, 2),
    ("throttled lock PutObject x1 (SlowDown)", "PutObject", 1, 2),
    ("throttled beyond the Retry's attempts", "UpdateAutoScalingGroup", None, 2),
]


def _final(o: Outcome) -> str:
    lock = ("released" if o.lock is None else "kept (foreign, untouched)" if o.lock[0] == "foreign"
            else f"kept ({o.lock[0]}, error in {o.lock[2]})")
    asgs = ", ".join(f"{n} {d}" for n, (d, _, _) in o.asgs.items())
    return f"{asgs}; lock {lock}"


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _row(case: Case) -> str:
    with _quiet():
        local, sfn = run_case(case, "local"), run_case(case, "sfn")
    same = local.outcome == sfn.outcome == case.expected
    return (f"| {case.id} | {local.outcome.exit_code} / {local.detail}; {_final(local.outcome)} | "
            f"{sfn.outcome.exit_code} / {sfn.detail}; {_final(sfn.outcome)} | "
            f"{'yes' if same else 'no'} |")


def _throttled_row(label: str, api: str, times: int | None, attempts: int) -> str:
    standard = next(c for c in CASES if c.id == "standard-ab")
    with _quiet(), executing_moto() as make:
        build_env(make, "qa", active="a", active_count=2, classic_elb=False, bucket=BUCKET)
        with fast_retries(attempts), throttled(api, times) as throttle:
            code = run_sfn(standard.settings())
        execution, events = last_execution(make)
        got = Run(outcome(make, code), "")
    failed = sorted({e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"})
    status = f"{execution['status']} {execution.get('error') or ''}".strip()
    return (f"| {label} | n/a (boto3 standard retries: tests/aws/test_retries.py) | "
            f"{code} / {status}; {throttle.answered} throttled ({', '.join(failed)}); "
            f"{_final(got.outcome)} | - |")


def main(argv: list[str]) -> None:
    print("| case | local: exit / final state | sfn: exit / execution status, error | same outcome |")
    print("|---|---|---|---|")
    for case in CASES:
        if not argv or case.id in argv:
            print(_row(case), flush=True)
    if not argv or "throttled" in argv:
        for label, api, times, attempts in THROTTLED:
            print(_throttled_row(label, api, times, attempts), flush=True)
    print("\n(throttled rows: Retry compiled with IntervalSeconds 1, BackoffRate 1, MaxAttempts 2; "
          "the packaged machine: 2 s, 2, 6)")


if __name__ == "__main__":
    main(sys.argv[1:])
