"""The AWS sinks against moto in-process: SNS -> SQS (subject, message, attributes),
EventBridge -> SQS (source, detail-types, detail), CloudWatch Logs (every line, in order)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from abfsm.aws import connect
from abfsm.log import json_line
from abfsm.notify import parse_sink
from abfsm.notify.aws_sinks import EventsSink, LogsSink, SnsSink
from abfsm.notify.base import DeliveryError, Item
from tests.support.aws_env import CREDENTIALS, REGION

RUN = "20261201T205000Z-3f9a2c"


def ev(name: str, n: int = 0, **keys: Any) -> dict[str, Any]:
    return {"ts": f"2026-12-01T21:00:{n // 1000:02d}.{n % 1000:03d}000Z", "level": "info",
            "event": name, "run_id": RUN, "env": "qa", **keys}


def services(spec: Any) -> Any:
    return connect(region=spec.region or REGION, credentials=CREDENTIALS)


def queue(make: Any, name: str = "q") -> tuple[str, str]:
    sqs = make("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def received(make: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        msgs = make("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return out
        out += [json.loads(m["Body"]) for m in msgs]
        for m in msgs:
            make("sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_sns_publishes_the_event_with_a_subject_and_filterable_attributes(aws):
    """SNS -> SQS: subject, the event's JSON line as message, attributes environment/outcome."""
    topic = aws("sns").create_topic(Name="deploys")["TopicArn"]
    url, arn = queue(aws)
    aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    sink = SnsSink(parse_sink(f"sns:{topic}"), services)
    started = ev("run.started", command="deploy")
    finished = ev("run.finished", 1, outcome="failed", failed_state="wait-elb", exit_code=1)
    sink.deliver([Item(started), Item(finished)], attempts=2)
    got = received(aws, url)
    assert [m["Subject"] for m in got] == ["abfsm qa: deploy started", "abfsm qa: failed in wait-elb (exit 1)"]
    assert [m["Message"] for m in got] == [json_line(started), json_line(finished)]
    assert [{k: v["Value"] for k, v in m["MessageAttributes"].items()} for m in got] == [
        {"environment": "qa", "outcome": "started", "event": "run.started"},
        {"environment": "qa", "outcome": "failed", "event": "run.finished"}]


def test_a_subscription_filter_on_outcome_sees_only_failures(aws):
    """Subscribers can filter on the outcome attribute (e.g. only failed runs)."""
    topic = aws("sns").create_topic(Name="deploys")["TopicArn"]
    url, arn = queue(aws)
    aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                         Attributes={"FilterPolicy": json.dumps({"outcome": ["failed"]})})
    sink = SnsSink(parse_sink(f"sns:{topic}"), services)
    sink.deliver([Item(ev("run.started")), Item(ev("run.finished", 1, outcome="failed")),
                  Item(ev("run.finished", 2, outcome="done"))], attempts=2)
    assert [json.loads(m["Message"])["outcome"] for m in received(aws, url)] == ["failed"]


def test_a_missing_topic_is_a_delivery_error(aws):
    """Publishing to a topic that does not exist raises DeliveryError naming the AWS error."""
    sink = SnsSink(parse_sink("sns:arn:aws:sns:us-east-1:123456789012:gone"), services)
    with pytest.raises(DeliveryError, match="sns Publish failed: NotFound"):
        sink.deliver([Item(ev("run.started"))], attempts=2)


def test_eventbridge_puts_source_abfsm_with_detail_types_and_the_event_as_detail(aws):
    """EventBridge -> SQS: source abfsm, detail-type per event, detail = the log event."""
    url, arn = queue(aws)
    aws("events").put_rule(Name="abfsm", EventPattern=json.dumps({"source": ["abfsm"]}))
    aws("events").put_targets(Rule="abfsm", Targets=[{"Id": "q", "Arn": arn}])
    sink = EventsSink(parse_sink("events:default"), services)
    events = [ev("run.started"), ev("state.failed", 1, state="wait-elb", error="x", exit_code=1, next="fail"),
              ev("run.finished", 2, outcome="failed"), ev("approval.pending", 3, state="approval", command="c")]
    sink.deliver([Item(e) for e in events], attempts=2)
    got = received(aws, url)
    assert [(m["source"], m["detail-type"]) for m in got] == [
        ("abfsm", "abfsm Run Started"), ("abfsm", "abfsm State Failed"),
        ("abfsm", "abfsm Run Finished"), ("abfsm", "abfsm Approval Pending")]
    assert [m["detail"] for m in got] == events


def test_a_missing_bus_is_a_delivery_error(aws):
    """PutEvents on a bus that does not exist raises DeliveryError."""
    sink = EventsSink(parse_sink("events:no-such-bus"), services)
    with pytest.raises(DeliveryError):
        sink.deliver([Item(ev("run.started"))], attempts=2)


def log_lines(make: Any, group: str, stream: str) -> list[str]:
    out: list[str] = []
    token: dict[str, Any] = {}
    while True:
        resp = make("logs").get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, **token)
        out += [e["message"] for e in resp["events"]]
        if not resp["events"] or resp["nextForwardToken"] == token.get("nextToken"):
            return out
        token = {"nextToken": resp["nextForwardToken"]}


def test_logs_puts_every_line_in_order_to_a_stream_named_by_the_run_id(aws):
    """--notify-create: the group is created, the stream is the run_id, 1500 lines arrive in order."""
    sink = LogsSink(parse_sink("logs:/abfsm/deploys"), services, create_group=True)
    sink.open()
    lines = [ev("wait.progress", i, poll=i) for i in range(1500)]
    sink.deliver([Item(e) for e in lines[:1000]], attempts=2)
    sink.deliver([Item(e) for e in lines[1000:]], attempts=2)
    assert log_lines(aws, "/abfsm/deploys", RUN) == [json_line(e) for e in lines]


def test_logs_without_the_group_and_without_notify_create_says_so(aws):
    """A missing group is not created without --notify-create: DeliveryError says how to fix it."""
    sink = LogsSink(parse_sink("logs:/abfsm/missing"), services)
    sink.open()
    with pytest.raises(DeliveryError, match="--notify-create"):
        sink.deliver([Item(ev("run.started"))], attempts=2)
    assert aws("logs").describe_log_groups()["logGroups"] == []


def test_logs_appends_to_an_existing_stream(aws):
    """A named stream that exists already (a resumed run) is appended to."""
    aws("logs").create_log_group(logGroupName="g")
    aws("logs").create_log_stream(logGroupName="g", logStreamName="s")
    aws("logs").put_log_events(logGroupName="g", logStreamName="s",
                               logEvents=[{"timestamp": 1796158800000, "message": "before"}])
    sink = LogsSink(parse_sink("logs:g:s"), services)
    sink.deliver([Item(ev("run.started", 5))], attempts=2)
    assert log_lines(aws, "g", "s") == ["before", json_line(ev("run.started", 5))]


def test_notify_clients_have_short_timeouts_and_one_retry(aws):
    """The sinks' boto3 clients give up fast: 2 attempts, 2 s connect, 3 s read."""
    svc = connect(region=REGION, credentials=CREDENTIALS)
    for adapter in (svc.sns, svc.events, svc.logs):
        config = adapter._client.meta.config
        assert (config.retries["total_max_attempts"], config.connect_timeout, config.read_timeout) == (2, 2, 3)
