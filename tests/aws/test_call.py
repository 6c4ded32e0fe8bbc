"""aws._call.call: errors reported whole, and a stop request during a call or botocore's
retries becomes Interrupted at once (never an AwsError, never retried)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from abfsm import cli
from abfsm.aws._call import call
from abfsm.clock import SystemClock, in_blocking_call
from abfsm.errors import AwsError, Interrupted
from tests.aws.test_retries import Failing


@pytest.fixture
def signals() -> Iterator[SystemClock]:
    """abfsm's SIGINT/SIGTERM handlers on a real clock; pytest's own are put back after."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    clock = SystemClock()
    cli._install_signals(clock)
    yield clock
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def no_keyboard_interrupt() -> Iterator[None]:
    """A KeyboardInterrupt escaping call() fails the test (instead of stopping pytest)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        pytest.fail(f"call() let KeyboardInterrupt({exc}) through instead of Interrupted")


def test_a_parameter_validation_error_is_reported_whole(services):
    """botocore's ParamValidationError keeps the lines after its first: the problem itself."""
    client = services.autoscaling._client
    with pytest.raises(AwsError) as err:
        call(client, "autoscaling", "DescribeAutoScalingGroups", AutoScalingGroupNames="qa-a")
    text = str(err.value)
    assert text.startswith("autoscaling DescribeAutoScalingGroups failed: ParamValidationError: "
                           "Parameter validation failed: Invalid type for parameter "
                           "AutoScalingGroupNames, value: qa-a")
    assert "\n" not in text


def test_a_signal_during_a_request_interrupts_the_call(aws, services, signals):
    """SIGINT while the 2nd attempt is in flight: Interrupted('stopped by SIGINT'), no retry."""
    client = services.autoscaling._client
    failing = Failing(client, "DescribeAutoScalingGroups", "Throttling", failures=100)
    original = failing.__call__

    def signal_on_second(request: Any, **kwargs: Any) -> Any:
        if failing.attempts == 1:
            signal.raise_signal(signal.SIGINT)
        return original(request, **kwargs)

    client.meta.events.unregister("before-send.auto-scaling.DescribeAutoScalingGroups", failing)
    client.meta.events.register_first("before-send.auto-scaling.DescribeAutoScalingGroups",
                                      signal_on_second)
    with no_keyboard_interrupt(), pytest.raises(Interrupted, match="^stopped by SIGINT$"):
        services.autoscaling.describe(["qa-a"])
    assert failing.attempts == 1  # the second attempt never got an answer, no third one
    assert signals.stop_reason == "SIGINT" and not in_blocking_call()


def test_a_signal_during_a_retry_back_off_interrupts_it(aws, services, signals, monkeypatch):
    """SIGTERM 0.2 s into a 30 s botocore back-off: Interrupted within a second."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 30.0)
    Failing(services.autoscaling._client, "DescribeAutoScalingGroups", "Throttling", failures=100)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    timer.start()
    try:
        with no_keyboard_interrupt(), pytest.raises(Interrupted, match="^stopped by SIGTERM$"):
            services.autoscaling.describe(["qa-a"])
    finally:
        timer.cancel()
    assert time.monotonic() - started < 1.5


def test_a_signal_between_calls_only_requests_a_stop(signals):
    """Outside an AWS call the first signal raises nothing: the clock's next check stops."""
    signal.raise_signal(signal.SIGINT)
    assert signals.stop_reason == "SIGINT"
    with pytest.raises(Interrupted, match="stopped by SIGINT"):
        signals.check_stop()
