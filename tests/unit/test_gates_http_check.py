"""http_check against an HTTP server on 127.0.0.1: `successes` expected answers in a row per
target, a wrong answer starting the count again, and a failure naming each target."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm.actions.http_check import http_check, targets
from abfsm.context import Plan
from abfsm.errors import StateFailed
from tests.support.aws_env import build_env, instance_ids
from tests.support.gates import Answers, gate_run, http_server

PLAN = Plan(mode="ab", target="qa-b", target_count=2, steps=[2], instance_ids=["i-1", "i-2"])


def check_run(tmp_path, clock, url, aws=None, plan=PLAN, **params: Any):
    params = {"url": url, "expect_status": 200, "expect_body": None, "successes": 3, **params}
    return gate_run(tmp_path, clock, "bake", aws=aws, plan=plan, params=params,
                    update_timeout=10, health_check_timeout=60)


def test_passes_after_successes_in_a_row_on_every_instance(tmp_path, clock):
    """Each instance's URL answers 200 three times in a row -> passed after 3 polls."""
    answers = Answers()
    with http_server(answers) as base:
        run = check_run(tmp_path, clock, base + "/health/{instance_id}")
        with capture_logs() as logs:
            assert http_check(run) == "passed"
    assert sorted(answers.seen) == ["/health/i-1"] * 3 + ["/health/i-2"] * 3
    assert clock.sleeps == [10.0, 10.0]
    assert [e["event"] for e in logs if e["event"].startswith("http_check")] == [
        "http_check.started", "http_check.passed"]


def test_a_wrong_answer_starts_the_count_again(tmp_path, clock):
    """i-2 answers 200, 503, then 200s: it needs three more passes after the 503."""
    answers = Answers()
    answers.by_path["/health/i-2"] = [(200, "ok"), (503, "warming up"), (200, "ok")]
    with http_server(answers) as base:
        run = check_run(tmp_path, clock, base + "/health/{instance_id}")
        assert http_check(run) == "passed"
    assert answers.seen.count("/health/i-2") == 5 and answers.seen.count("/health/i-1") == 3


def test_timeout_is_failed_naming_each_target_its_answer_and_when(tmp_path, clock):
    """i-2 never answers 200 within 60 s: `failed`, and http_check.failed names i-2 only, what
    it answered last and at what time."""
    answers = Answers()
    answers.by_path["/health/i-2"] = [(503, "warming up")]
    with http_server(answers) as base:
        run = check_run(tmp_path, clock, base + "/health/{instance_id}")
        with capture_logs() as logs:
            assert http_check(run) == "failed"
    failed = [e for e in logs if e["event"] == "http_check.failed"][0]
    assert [(t["target"], t["answered"], t["at"]) for t in failed["targets"]] == [
        ("i-2", "HTTP 503 (expected 200)", "2026-01-01T12:01:00Z")]
    assert failed["timeout_s"] == 60


def test_expect_body_must_be_in_the_answer(tmp_path, clock):
    """A 200 without the expected text is not a pass; the failure quotes the body."""
    answers = Answers()
    answers.default = (200, '{"status": "degraded"}')
    with http_server(answers) as base:
        run = check_run(tmp_path, clock, base + "/health", expect_body='"status": "ok"')
        with capture_logs() as logs:
            assert http_check(run) == "failed"
    target = [e for e in logs if e["event"] == "http_check.failed"][0]["targets"][0]
    assert target["answered"].startswith("HTTP 200 without '\"status\": \"ok\"' in the body")


def test_no_answer_is_named(tmp_path, clock):
    """A port nobody listens on: the failure says there was no answer and why."""
    with http_server(Answers()) as base:
        pass  # closed again: nothing listens there now
    run = check_run(tmp_path, clock, base + "/health", successes=1)
    with capture_logs() as logs:
        assert http_check(run) == "failed"
    target = [e for e in logs if e["event"] == "http_check.failed"][0]["targets"][0]
    assert target["answered"].startswith("no answer (")


def test_private_ip_and_dns_come_from_describe_instances(tmp_path, clock, aws, services):
    """{private_ip} / {private_dns} are filled from one DescribeInstances (no request sent)."""
    build_env(aws, "qa", active="b", active_count=2)
    ids = instance_ids(aws, "qa-b")
    described = aws("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    ips = {i["InstanceId"]: (i["PrivateIpAddress"], i["PrivateDnsName"])
           for r in described for i in r["Instances"]}
    plan = Plan(mode="ab", target="qa-b", target_count=2, steps=[2], instance_ids=ids)
    run = check_run(tmp_path, clock, "http://{private_ip}:8080/health?dns={private_dns}",
                    aws=services, plan=plan)
    with capture_logs() as logs:
        got = targets(run, run.params["url"])
    assert [(t.name, t.url) for t in got] == [
        (i, f"http://{ips[i][0]}:8080/health?dns={ips[i][1]}") for i in ids]
    assert [e["action"] for e in logs if e["event"] == "aws.read"] == ["DescribeInstances"]


def test_lb_dns_checks_each_load_balancer_once(tmp_path, clock, aws, services):
    """{lb_dns}: one target per load balancer of the plan, its DNS name filled in."""
    build_env(aws, "qa", active="b", active_count=1)
    dns = aws("elb").describe_load_balancers(
        LoadBalancerNames=["qa-public"])["LoadBalancerDescriptions"][0]["DNSName"]
    plan = Plan(mode="ab", target="qa-b", load_balancers=["qa-public"], instance_ids=["i-1"])
    run = check_run(tmp_path, clock, "http://{lb_dns}/health", aws=services, plan=plan)
    assert [(t.name, t.url) for t in targets(run, run.params["url"])] == [
        ("qa-public", f"http://{dns}/health")]


def test_an_unknown_placeholder_fails_the_state(tmp_path, clock):
    """{public_ip} is not a placeholder abfsm fills: a failure of the state, naming it."""
    run = check_run(tmp_path, clock, "http://{public_ip}/health")
    with pytest.raises(StateFailed, match=r"unknown placeholder \{public_ip\}"):
        http_check(run)
