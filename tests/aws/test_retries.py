"""Throttling is retried by boto3's standard retry mode, not fatal (clients from connect())."""

from __future__ import annotations

from typing import Any

import pytest

from abfsm.aws.session import RETRIES
from abfsm.errors import AwsError
from tests.support.aws_env import build_env, instance_ids

_ERROR = ("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
          "<Message>{message}</Message></Error><RequestId>req-{n}</RequestId></ErrorResponse>")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class Failing:
    """Answers the first `failures` attempts of one operation with an AWS error; the rest go
    through to moto. Counts attempts (every HTTP send, retries included)."""

    def __init__(self, client: Any, operation: str, code: str, *, failures: int,
                 message: str = "Rate exceeded") -> None:
        self.code, self.message, self.failures = code, message, failures
        self.attempts = 0
        service = client.meta.service_model.service_id.hyphenize()
        # First, so it answers before moto's own before-send handler.
        client.meta.events.register_first(f"before-send.{service}.{operation}", self)

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        self.attempts += 1
        if self.attempts > self.failures:
            return None
        body = _ERROR.format(code=self.code, message=self.message, n=self.attempts).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Raw(body))


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """botocore's standard backoff, recorded and cut to 0 s so retries never really sleep."""
    from botocore.retries.standard import ExponentialBackoff

    seen: list[int] = []

    def delay_amount(self: Any, context: Any) -> float:
        seen.append(context.attempt_number)
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", delay_amount)
    return seen


def test_clients_use_standard_retry_mode(services):
    """Clients from connect() use standard mode (8 retries, 9 attempts); RETRIES is not altered."""
    for adapter in (services.autoscaling, services.elb, services.elbv2, services.s3):
        # botocore's `max_attempts` counts retries; it keeps the total with the first attempt.
        assert adapter._client.meta.config.retries == {"mode": "standard",
                                                       "total_max_attempts": 9}
    assert RETRIES == {"mode": "standard", "max_attempts": 8}


def test_throttled_describe_groups_is_retried(aws, services, backoffs):
    """Two Throttling answers, then success: describe() returns the groups after 3 attempts."""
    build_env(aws, "qa", active="a", active_count=2)
    failing = Failing(services.autoscaling._client, "DescribeAutoScalingGroups", "Throttling",
                      failures=2)
    groups = services.autoscaling.describe(["qa-a", "qa-b"])
    assert sorted(groups) == ["qa-a", "qa-b"] and len(groups["qa-a"].instances) == 2
    assert failing.attempts == 3
    assert backoffs == [1, 2]


def test_request_limit_exceeded_on_elb_health_is_retried(aws, services, backoffs):
    """Two RequestLimitExceeded answers, then success: members() returns every instance."""
    build_env(aws, "qa", active="a", active_count=3)
    failing = Failing(services.elb._client, "DescribeInstanceHealth", "RequestLimitExceeded",
                      failures=2)
    members = services.elb.members("qa-public")
    assert sorted(m.id for m in members) == instance_ids(aws, "qa-a")
    assert failing.attempts == 3
    assert backoffs == [1, 2]


def test_throttling_that_never_stops_fails_after_max_attempts(aws, services, backoffs):
    """Throttled on every attempt: AwsError naming the code after 1 attempt + 8 retries."""
    failing = Failing(services.autoscaling._client, "DescribeAutoScalingGroups", "Throttling",
                      failures=100)
    with pytest.raises(AwsError, match="autoscaling DescribeAutoScalingGroups failed: "
                                       "Throttling: Rate exceeded"):
        services.autoscaling.describe(["qa-a"])
    assert failing.attempts == 9
    assert backoffs == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_validation_error_is_not_retried(aws, services, backoffs):
    """A non-retryable error fails at once: one attempt, no backoff."""
    failing = Failing(services.autoscaling._client, "DescribeAutoScalingGroups",
                      "ValidationError", failures=100, message="bad name")
    with pytest.raises(AwsError, match="ValidationError: bad name"):
        services.autoscaling.describe(["qa-a"])
    assert failing.attempts == 1
    assert backoffs == []
