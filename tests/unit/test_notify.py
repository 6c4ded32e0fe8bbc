"""Notifications without the network: parsing SINK strings and --notify-on, redaction, the
Slack Block Kit message, the RFC 5424 format, the webhook signature, and the log tap."""

from __future__ import annotations

import hashlib
import hmac
import io
import json

import pytest
import structlog

from abfsm import log
from abfsm.errors import EXIT_USAGE, UsageError
from abfsm.log_schema import EVENTS
from abfsm.notify import DEFAULT_EVENTS, parse_events, parse_sink, parse_sinks
from abfsm.notify.aws_sinks import detail_type, subject
from abfsm.notify.base import outcome_of
from abfsm.notify.http import signature
from abfsm.notify.redact import Scrubber, redact_url
from abfsm.notify.slack import message
from abfsm.notify.syslog import format_5424

SECRET_PATH = "T0AAA/B0BBB/s3cr3tXYZtoken"
SLACK = f"slack:https://hooks.slack.com/services/{SECRET_PATH}"
ARN = "arn:aws:sns:eu-west-1:123456789012:deploys"

FAILED_FINISH = {
    "ts": "2026-12-01T21:00:00.000000Z", "level": "info", "event": "run.finished",
    "run_id": "20261201T205000Z-3f9a2c", "env": "qa", "outcome": "failed", "exit_code": 1,
    "duration_s": 600.4, "path": [{"state": "locked", "elapsed_s": 0.05},
                                  {"state": "inspect", "elapsed_s": 0.11},
                                  {"state": "scale", "elapsed_s": 0.08},
                                  {"state": "wait-instances", "elapsed_s": 30.2},
                                  {"state": "wait-elb", "elapsed_s": 570.0}],
    "final_state": "failed", "failed_state": "wait-elb",
    "error": "wait-elb: 0/4 InService in qa-public after 600 s; i-0a1 OutOfService",
    "active": "qa-a", "target": "qa-b", "active_count": 4, "target_count": 4,
    "lock": "held by this run: s3://ops-locks/qa.lock",
    "next": ["fix the cause, then: abfsm resume --environment qa --lock-bucket-name ops-locks  "
             "(re-enters wait-elb)"], "dry_run": False}
STARTED = {"event": "run.started", "env": "qa", "run_id": "20261201T205000Z-3f9a2c",
           "command": "deploy", "lock": "s3://ops-locks/qa.lock", "version": "0.1.0",
           "started_by": {"user": "ci", "host": "runner-7",
                          "ci_job_url": "https://github.com/acme/shop/actions/runs/42"}}


# -- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    SLACK, "webhook:https://example.com/abfsm?token=x", "webhook:http://127.0.0.1:8080/hook",
    "webhook:http://localhost/hook", "webhook:http://[::1]:9/x", f"sns:{ARN}", "events:default",
    "events:arn:aws:events:us-east-1:123456789012:event-bus/ops", "logs:/abfsm/deploys",
    "logs:/abfsm/deploys:qa-stream", "syslog:udp://127.0.0.1:514", "syslog:tcp://logs.internal:6514",
    "syslog:unix:///dev/log"])
def test_every_documented_sink_form_parses(text):
    """Each SINK form of the README parses, keeping its kind and target."""
    spec = parse_sink(text)
    assert f"{spec.kind}:{spec.target}" == text


@pytest.mark.parametrize(("text", "says"), [
    ("teams:https://x.example/hook", "unknown sink kind"),
    ("https://hooks.slack.com/services/x", "unknown sink kind"),
    ("slack:http://hooks.slack.com/services/T/B/secretsecret", "http is allowed only for loopback"),
    ("webhook:ftp://example.com/x", "not an https URL"),
    ("webhook:https:///nohost", "not a URL"),
    ("sns:arn:aws:sqs:us-east-1:123456789012:q", "not an SNS topic ARN"),
    ("sns:deploys", "not an SNS topic ARN"),
    ("events:bad bus", "not an EventBridge bus"),
    ("logs:", "not a log group name"),
    ("logs:group:str*eam", "not a log stream name"),
    ("syslog:udp://127.0.0.1", "syslog:udp://HOST:PORT"),
    ("syslog:udp://127.0.0.1:99999", "syslog:udp://HOST:PORT"),
    ("syslog:http://x:1", "syslog:udp://HOST:PORT"),
    ("syslog:unix://relative", "syslog:udp://HOST:PORT"),
])
def test_a_bad_sink_is_a_usage_error_naming_the_problem(text, says):
    """A bad SINK string raises UsageError (exit 2) saying what is wrong."""
    with pytest.raises(UsageError) as info:
        parse_sink(text)
    assert says in str(info.value) and info.value.exit_code == EXIT_USAGE


def test_a_refused_sink_message_never_shows_the_secret():
    """The refusal of a Slack URL over plain http names the sink redacted, not its secret path."""
    with pytest.raises(UsageError) as info:
        parse_sink(f"slack:http://hooks.slack.com/services/{SECRET_PATH}")
    assert "s3cr3t" not in str(info.value) and "hooks.slack.com/services/***" in str(info.value)


def test_abfsm_notify_comes_first_and_flags_add_to_it():
    """ABFSM_NOTIFY's space-separated sinks, then the --notify flags; a repeat counts once."""
    specs = parse_sinks(["events:default", "logs:g"], "  logs:g   syslog:udp://127.0.0.1:514 ")
    assert [str(s) for s in specs] == ["logs:g", "syslog:udp://127.0.0.1:514", "events:default"]


def test_a_bad_sink_in_abfsm_notify_is_named_as_from_it():
    """The refusal of an ABFSM_NOTIFY entry says it came from ABFSM_NOTIFY."""
    with pytest.raises(UsageError, match="^ABFSM_NOTIFY "):
        parse_sinks([], "nonsense")


def test_notify_on_defaults_and_validates_event_names():
    """No --notify-on: the default three; a list is split on commas; an unknown name is refused."""
    known = frozenset(EVENTS)
    assert parse_events(None, known) == list(DEFAULT_EVENTS)
    assert parse_events("run.finished, approval.pending", known) == ["run.finished", "approval.pending"]
    with pytest.raises(UsageError, match="'run.ended'"):
        parse_events("run.started,run.ended", known)
    with pytest.raises(UsageError):
        parse_events(" , ", known)


def test_sink_specs_list_their_aws_calls_and_resource():
    """Each AWS sink names the IAM actions it calls and the ARN they act on (for IAM policies)."""
    assert parse_sink(f"sns:{ARN}").aws_calls() == ["sns:Publish"]
    assert parse_sink(f"sns:{ARN}").resource == ARN
    assert parse_sink("events:default").resource == "arn:aws:events:*:*:event-bus/default"
    logs = parse_sink("logs:/abfsm/deploys:s")
    assert logs.aws_calls(create=True) == ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs.resource == "arn:aws:logs:*:*:log-group:/abfsm/deploys:*"
    assert parse_sink(SLACK).aws_calls() == [] and parse_sink(SLACK).resource is None


# -- redaction -------------------------------------------------------------------------------

def test_slack_and_webhook_targets_are_shown_by_host_only():
    """The redacted form keeps scheme, host, port and the first path segment; never the rest."""
    assert parse_sink(SLACK).redacted == "slack:https://hooks.slack.com/services/***"
    assert redact_url("https://user:pw@example.com:8443/abc?token=t") == "https://example.com:8443/***"
    assert redact_url("https://example.com") == "https://example.com"
    assert "s3cr3t" not in repr(parse_sink(SLACK)) and "s3cr3t" not in str(parse_sink(SLACK))


def test_the_scrubber_masks_urls_their_paths_and_secrets_in_any_text():
    """Error texts quoting a secret URL, its path or the HMAC secret come out masked."""
    scrub = Scrubber([f"https://hooks.slack.com/services/{SECRET_PATH}", "hmac-key-123"])
    text = scrub(f"POST /services/{SECRET_PATH} failed; key hmac-key-123; bare s3cr3tXYZtoken")
    assert "s3cr3t" not in text and "hmac-key-123" not in text and text.count("***") == 3


# -- payloads --------------------------------------------------------------------------------

def _texts(payload: dict) -> str:
    return json.dumps(payload)


def test_slack_message_of_a_failed_run_has_everything_an_operator_needs():
    """Block Kit for a failed run: env, outcome, path with times, old/new ASG and counts, who and
    the CI job, the error and the exact next command."""
    payload = message(FAILED_FINISH, STARTED)
    text = _texts(payload)
    assert payload["blocks"][0]["type"] == "header"
    assert "qa: deployment FAILED in wait-elb after 600.4 s" in payload["text"]
    for needle in ("failed (exit 1)", "`wait-elb` 570.0 s", "`wait-instances` 30.2 s", "qa-a (4 desired",
                   "qa-b (target 4 instance(s))", "ci@runner-7", "https://github.com/acme/shop/actions/runs/42",
                   "0/4 InService in qa-public", "abfsm resume --environment qa --lock-bucket-name ops-locks"):
        assert needle in text, needle


def test_slack_texts_are_escaped_and_within_slack_limits():
    """<, > and & are escaped in mrkdwn, and no section text exceeds 3000 characters."""
    payload = message({**FAILED_FINISH, "error": "<script> & " + "x" * 5000}, STARTED)
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section" and "text" in b]
    assert all(len(t) <= 3000 for t in sections)
    assert "&lt;script&gt; &amp;" in _texts(payload)


def test_sns_subject_outcome_and_eventbridge_detail_types():
    """Short SNS subjects; outcome `started` for a start; detail-types `abfsm Run Started` etc."""
    assert subject(FAILED_FINISH) == "abfsm qa: failed in wait-elb (exit 1)"
    assert outcome_of(STARTED) == "started" and outcome_of(FAILED_FINISH) == "failed"
    assert [detail_type(n) for n in ("run.started", "state.failed", "run.finished", "approval.pending")] == [
        "abfsm Run Started", "abfsm State Failed", "abfsm Run Finished", "abfsm Approval Pending"]


def test_syslog_message_is_rfc5424_with_severity_from_the_level():
    """<PRI>1 TIMESTAMP HOST abfsm PID MSGID [SD] JSON; error -> severity 3, info -> 6 (facility user)."""
    line = format_5424({**FAILED_FINISH, "level": "error"}, hostname="build-1", pid=42).decode()
    head, _, body = line.partition(" {")
    assert head == ('<11>1 2026-12-01T21:00:00.000000Z build-1 abfsm 42 run.finished '
                    '[abfsm@32473 run_id="20261201T205000Z-3f9a2c" env="qa"]')
    assert json.loads("{" + body)["outcome"] == "failed"
    assert format_5424({"event": "transition", "level": "info"}, hostname="h", pid=1).startswith(b"<14>1 ")


def test_webhook_signature_is_hmac_sha256_of_the_body():
    """X-Abfsm-Signature is sha256= and the hex HMAC-SHA256 of the exact body with the secret."""
    body = b'{"event":"run.finished"}'
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


# -- the log tap -----------------------------------------------------------------------------

def test_the_log_tap_gets_every_event_with_run_id_env_level_and_ts():
    """A tap is handed each event dict (bound keys merged) and rendering is unchanged."""
    seen: list[dict] = []
    out = io.StringIO()
    log.configure("json", stream=out)
    log.add_tap(seen.append)
    try:
        log.bind(run_id="r1", env="qa")
        structlog.get_logger("abfsm").info("lock.acquired", lock="qa.lock")
    finally:
        log.remove_tap(seen.append)
    structlog.get_logger("abfsm").info("lock.free", lock="qa.lock")
    assert [(e["event"], e["run_id"], e["env"], e["level"]) for e in seen] == [
        ("lock.acquired", "r1", "qa", "info")]
    assert "ts" in seen[0]
    assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == ["lock.acquired", "lock.free"]


def test_a_tap_that_raises_does_not_break_logging():
    """A listener's exception is swallowed: the line is still written."""
    def broken(_: dict) -> None:
        raise RuntimeError("boom")

    out = io.StringIO()
    log.configure("json", stream=out)
    log.add_tap(broken)
    try:
        structlog.get_logger("abfsm").info("lock.acquired", lock="qa.lock")
    finally:
        log.remove_tap(broken)
    assert json.loads(out.getvalue())["event"] == "lock.acquired"


def test_notify_failed_has_a_console_sentence():
    """notify.failed renders as a sentence naming the sink, the redacted target and the reason."""
    text = log.ConsoleRenderer(verbose=False)(None, "warning", {
        "event": "notify.failed", "level": "warning", "sink": "slack",
        "target": "https://hooks.slack.com/services/***", "reason": "HTTP 500"})
    assert text == ("  notify: slack https://hooks.slack.com/services/*** failed: HTTP 500 "
                    "(the run goes on; no more reports of this sink)")


def test_slack_message_of_a_pending_approval_names_both_commands():
    """approval.pending (the approval gate) shows the state and the approve and reject commands."""
    payload = message({"event": "approval.pending", "env": "qa", "run_id": "r1", "state": "approval",
                       "command": "abfsm approve --environment qa --run-id r1",
                       "reject": "abfsm approve --environment qa --run-id r1 --reject", "pause": False,
                       "timeout_s": 3600}, STARTED)
    text = _texts(payload)
    assert payload["text"] == "qa: waiting for approval in approval"
    assert "abfsm approve --environment qa --run-id r1```" in text and "--reject```" in text
