"""Notifications: Slack, webhooks, SNS, EventBridge, CloudWatch Logs and syslog.

`parse` checks what the user handed in (before any AWS call); `build.start()` runs the
sinks behind a log tap; nothing here can fail or stall a deployment.
"""

from abfsm.notify.parse import CHAT, DEFAULT_EVENTS, KINDS, SinkSpec, parse_events, parse_sink, parse_sinks

__all__ = ["CHAT", "DEFAULT_EVENTS", "KINDS", "SinkSpec", "parse_events", "parse_sink", "parse_sinks"]
