"""Notifications end to end: the CLI in a subprocess against moto_server, with real
receivers on 127.0.0.1 (Slack and webhook HTTP servers, syslog sockets) and real SQS queues
behind SNS and EventBridge, CloudWatch Logs in moto. Dead sinks never fail or stall a run;
no secret reaches any output, record or notification."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from abfsm.notify.http import signature
from abfsm.notify.worker import FLUSH_S
from tests.e2e.test_log_schema import schema_problems
from tests.support.aws_env import build_env
from tests.support.notify_receivers import HttpReceiver, SyslogReceiver

SECRET = "T0AAA/B0BBB/s3cr3tXYZtoken"
HMAC_KEY = "hmac-k3y-never-shown"
BROKEN = ("deploy", "--environment", "qa", "--instance-count", "2", "--health-check-timeout", "60",
          "--update-timeout", "30")
OK = ("deploy", "--environment", "qa", "--instance-count", "2", "--no-elb-check")
CHAT = ["run.started", "state.failed", "run.finished"]


def lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("{")]


def own_call(line: str, service: str) -> bool:
    event = json.loads(line)
    return event["event"] == "aws.call" and event["service"] == service


def sqs_queue(make: Any, name: str) -> tuple[str, str]:
    url = make("sqs").create_queue(QueueName=name)["QueueUrl"]
    arn = make("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def drain_queue(make: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while msgs := make("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out += [json.loads(m["Body"]) for m in msgs]
        for m in msgs:
            make("sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_slack_gets_block_kit_messages_of_a_failed_deployment(deploy_broken, make):
    """Slack receives run.started, state.failed and run.finished; the last names the failed state,
    the error, the old/new ASG, the path and the exact resume command."""
    build_env(make, "qa", active_count=2)
    with HttpReceiver() as rx:
        result, _ = deploy_broken(*BROKEN, "--notify", f"slack:{rx.url('/services/' + SECRET)}")
    assert result.returncode == 1, result.stderr
    assert [r.path for r in rx.requests] == ["/services/" + SECRET] * 3
    started, failed, finished = rx.bodies()
    assert started["text"] == "qa: deploy started"
    assert failed["text"].startswith("qa: wait-elb failed")
    assert finished["text"].startswith("qa: deployment FAILED in wait-elb after")
    text = json.dumps(finished["blocks"])
    for needle in ("qa-a (2 desired", "qa-b (target 2 instance(s))", "`wait-elb`", "0/2 InService",
                   "abfsm resume --environment qa", result.finished["run_id"]):
        assert needle in text, needle


def test_webhook_posts_each_event_exactly_as_logged_and_signed(deploy_broken, make, monkeypatch):
    """The webhook body of each selected event is byte for byte its JSON log line, and
    X-Abfsm-Signature is the HMAC-SHA256 of it with ABFSM_WEBHOOK_SECRET."""
    monkeypatch.setenv("ABFSM_WEBHOOK_SECRET", HMAC_KEY)
    build_env(make, "qa", active_count=2)
    with HttpReceiver() as rx:
        result, _ = deploy_broken(*BROKEN, "--notify", f"webhook:{rx.url('/in/' + SECRET)}")
    assert result.returncode == 1
    logged = [line for line in lines(result.stdout) if json.loads(line)["event"] in CHAT]
    assert [r.body.decode() for r in rx.requests] == logged and len(logged) == 3
    assert all(r.headers["X-Abfsm-Signature"] == signature(HMAC_KEY, r.body) for r in rx.requests)


def test_notify_on_chooses_the_events_of_chat_sinks(cli, make):
    """--notify-on transition,run.finished: the webhook gets every transition and the outcome only."""
    build_env(make, "qa", active_count=2)
    with HttpReceiver() as rx:
        result = cli(*OK, "--notify", f"webhook:{rx.url()}", "--notify-on", "transition,run.finished")
    assert result.returncode == 0
    assert [b["event"] for b in rx.bodies()] == ["transition"] * len(result.transitions) + ["run.finished"]


def test_sns_and_eventbridge_subscribers_get_the_failed_run(deploy_broken, make):
    """SNS -> SQS: subjects and environment/outcome attributes; EventBridge -> SQS: source abfsm,
    the detail-types, detail = the log event."""
    build_env(make, "qa", active_count=2)
    topic = make("sns").create_topic(Name="deploys")["TopicArn"]
    sns_url, sns_arn = sqs_queue(make, "from-sns")
    make("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=sns_arn)
    ev_url, ev_arn = sqs_queue(make, "from-events")
    make("events").put_rule(Name="abfsm", EventPattern=json.dumps({"source": ["abfsm"]}))
    make("events").put_targets(Rule="abfsm", Targets=[{"Id": "q", "Arn": ev_arn}])
    result, _ = deploy_broken(*BROKEN, "--notify", f"sns:{topic}", "--notify", "events:default")
    assert result.returncode == 1 and result.named("notify.failed") == []
    sns = drain_queue(make, sns_url)
    assert [m["Subject"] for m in sns] == ["abfsm qa: deploy started", "abfsm qa: wait-elb failed",
                                          "abfsm qa: failed in wait-elb (exit 1)"]
    assert [(m["MessageAttributes"]["environment"]["Value"], m["MessageAttributes"]["outcome"]["Value"])
            for m in sns] == [("qa", "started"), ("qa", "failed"), ("qa", "failed")]
    assert json.loads(sns[2]["Message"]) == result.finished
    events = drain_queue(make, ev_url)
    assert [(e["source"], e["detail-type"]) for e in events] == [
        ("abfsm", "abfsm Run Started"), ("abfsm", "abfsm State Failed"), ("abfsm", "abfsm Run Finished")]
    assert [e["detail"] for e in events] == [result.named(n)[0] for n in CHAT]


def test_cloudwatch_logs_gets_every_line_of_the_run_in_order(deploy_broken, make):
    """logs:GROUP with --notify-create: the group is created, the stream is the run_id, and it holds
    every JSON line of stdout in order (all but the sink's own PutLogEvents/CreateLog* calls)."""
    build_env(make, "qa", active_count=2)
    result, _ = deploy_broken(*BROKEN, "--verbose", "--notify", "logs:/abfsm/deploys", "--notify-create")
    assert result.returncode == 1 and result.named("notify.failed") == []
    run_id = result.finished["run_id"]
    got = make("logs").get_log_events(logGroupName="/abfsm/deploys", logStreamName=run_id,
                                      startFromHead=True)["events"]
    expected = [line for line in lines(result.stdout) if not own_call(line, "logs")]
    assert [e["message"] for e in got] == expected and len(expected) > 20
    assert any(own_call(line, "logs") for line in lines(result.stdout))  # they are logged, not forwarded


def test_a_missing_log_group_without_notify_create_is_reported_not_fatal(cli, make):
    """Without --notify-create a missing group is not created: one notify.failed, exit 0."""
    build_env(make, "qa", active_count=2)
    result = cli(*OK, "--notify", "logs:/abfsm/missing")
    assert result.returncode == 0
    (failed,) = result.named("notify.failed")
    assert failed["sink"] == "logs" and "--notify-create" in failed["reason"]
    assert make("logs").describe_log_groups()["logGroups"] == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_syslog_gets_every_line_as_rfc5424(cli, make, transport):
    """syslog:udp:// and syslog:tcp://: one RFC 5424 message per log line, in order, severity
    from the level, MSGID the event name, the JSON line as MSG."""
    build_env(make, "qa", active_count=2)
    with SyslogReceiver(transport) as rx:
        result = cli(*OK, "--notify", f"syslog:{rx.address}")
        deadline = time.monotonic() + 5
        while len(rx.messages) < len(lines(result.stdout)) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert result.returncode == 0
    got = [m.decode() for m in rx.messages]
    assert [m.partition(" {")[2] for m in got] == [line[1:] for line in lines(result.stdout)]
    first = got[0].split(" ")
    assert (first[0], first[3], first[5]) == ("<14>1", "abfsm", "run.started")


def cost_of_sink(cli: Any, *sink: str) -> tuple[Any, float, float]:
    """(result, seconds without the sink, seconds with it) of the same deployment (qa-a -> qa-b),
    wall time of the CLI process."""
    begun = time.monotonic()
    assert cli(*OK).returncode == 0
    baseline = time.monotonic() - begun
    assert cli(*OK).returncode == 0  # back to qa-a
    begun = time.monotonic()
    result = cli(*OK, *sink)
    return result, baseline, time.monotonic() - begun


def test_a_receiver_answering_500_neither_fails_nor_slows_the_run(cli, make):
    """A webhook answering 500: exit 0 as without it, one notify.failed (redacted, HTTP 500), well
    under the flush bound of extra wall time, and the log still validates against the schema."""
    build_env(make, "qa", active_count=2)
    with HttpReceiver("error") as rx:
        result, baseline, with_sink = cost_of_sink(cli, "--notify", f"webhook:{rx.url('/in/' + SECRET)}")
    print(f"\nwithout a sink {baseline:.2f} s; with a webhook answering 500 {with_sink:.2f} s")
    assert result.returncode == 0 and result.finished["outcome"] == "done"
    assert with_sink - baseline < FLUSH_S
    (failed,) = result.named("notify.failed")
    assert (failed["sink"], failed["reason"]) == ("webhook", "HTTP 500")
    assert failed["target"].endswith("/in/***") and SECRET not in result.stdout
    assert len(rx.requests) >= 3  # every event was still tried
    assert schema_problems(result.stdout) == []


def test_a_hanging_receiver_costs_the_run_at_most_the_flush_bound(cli, make):
    """A Slack receiver that hangs 30 s: exit 0, and the run takes at most 5 s (FLUSH_S) longer than
    the same run without it; reported once as notify.failed with the target redacted."""
    build_env(make, "qa", active_count=2)
    with HttpReceiver("hang") as rx:
        result, baseline, with_sink = cost_of_sink(cli, "--notify", f"slack:{rx.url('/services/' + SECRET)}")
    print(f"\nwithout a sink {baseline:.2f} s; with a hanging Slack receiver {with_sink:.2f} s "
          f"(+{with_sink - baseline:.2f} s; bound {FLUSH_S} s)")
    assert result.returncode == 0 and result.finished["outcome"] == "done"
    assert with_sink - baseline < 5.0 + 2.0  # the README's bound (5 s), with room for a busy machine
    (failed,) = result.named("notify.failed")
    assert (failed["sink"], failed["target"]) == ("slack", rx.url("/services/***"))


def test_no_output_record_status_or_notification_contains_a_secret(cli, deploy_broken, make, server,
                                                                    monkeypatch):
    """A failed deploy and its resume with Slack, webhook (signed) and logs sinks: the secret URL
    path and the HMAC key appear in no stdout/stderr, lock object, ENV/runs/ record, status
    output (text or JSON) or notification; settings name the sinks redacted (resume: its own)."""
    from tests.support.aws_env import instance_ids

    monkeypatch.setenv("ABFSM_WEBHOOK_SECRET", HMAC_KEY)
    build_env(make, "qa", active_count=2, bucket="qa-locks")
    outputs: list[str] = []
    with HttpReceiver() as slack_rx, HttpReceiver() as hook_rx:
        sinks = ["--notify", f"slack:{slack_rx.url('/services/' + SECRET)}",
                 "--notify", f"webhook:{hook_rx.url('/hook/' + SECRET)}",
                 "--notify", "logs:/abfsm/deploys", "--notify-create"]
        failed, _ = deploy_broken(*BROKEN, "--lock-bucket-name", "qa-locks", *sinks)
        assert failed.returncode == 1
        lock_body = make("s3").get_object(Bucket="qa-locks", Key="qa.lock")["Body"].read().decode()
        for fmt in ("text", "json"):
            status = cli("status", "--environment", "qa", "--lock-bucket-name", "qa-locks", "--format", fmt)
            outputs += [status.stdout, status.stderr]
        make("ec2").start_instances(InstanceIds=instance_ids(make, "qa-b"))
        resumed = cli("resume", "--environment", "qa", "--lock-bucket-name", "qa-locks", *sinks[2:],
                      extra_env={"ABFSM_VIRTUAL_CLOCK": "1"})  # resume's own sinks: no Slack
        assert resumed.returncode == 0, resumed.stderr
    records = [make("s3").get_object(Bucket="qa-locks", Key=k["Key"])["Body"].read().decode()
               for k in make("s3").list_objects_v2(Bucket="qa-locks", Prefix="qa/runs/")["Contents"]]
    logged = [e["message"] for s in make("logs").describe_log_streams(logGroupName="/abfsm/deploys")["logStreams"]
              for e in make("logs").get_log_events(logGroupName="/abfsm/deploys",
                                                   logStreamName=s["logStreamName"])["events"]]
    outputs += [failed.stdout, failed.stderr, resumed.stdout, resumed.stderr, lock_body, *records, *logged]
    outputs += [r.body.decode() for r in slack_rx.requests + hook_rx.requests]
    assert records and logged and slack_rx.requests and hook_rx.requests
    leaks = [o for o in outputs if "s3cr3t" in o or HMAC_KEY in o or "B0BBB" in o]
    assert leaks == []
    assert failed.named("run.started")[0]["settings"]["notify"] == [
        f"slack:{slack_rx.url('/services/***')}", f"webhook:{hook_rx.url('/hook/***')}", "logs:/abfsm/deploys"]
    assert resumed.named("run.started")[0]["settings"]["notify"] == [
        f"webhook:{hook_rx.url('/hook/***')}", "logs:/abfsm/deploys"]
    assert json.loads(lock_body)["settings"]["notify"][0].endswith("/services/***")
