"""Turn parsed SinkSpecs into running sinks: the one place that knows every kind."""

from __future__ import annotations

from collections.abc import Iterable

from abfsm.clock import Clock
from abfsm.notify.base import Sink
from abfsm.notify.parse import SinkSpec
from abfsm.notify.worker import FLUSH_S, Notifier


def sink_for(spec: SinkSpec, *, clock: Clock, secret: str | None = None, create: bool = False,
             region: str | None = None, endpoint_url: str | None = None,
             profile: str | None = None) -> Sink:
    """The sink of one spec (no I/O yet: clients and sockets are made on its worker thread)."""
    if spec.kind in ("slack", "webhook"):
        from abfsm.notify.http import SlackSink, WebhookSink

        return SlackSink(spec, clock) if spec.kind == "slack" else WebhookSink(spec, clock, secret=secret)
    if spec.kind == "syslog":
        from abfsm.notify.syslog import SyslogSink

        return SyslogSink(spec)
    from abfsm.aws import Services, connect
    from abfsm.notify.aws_sinks import EventsSink, LogsSink, SnsSink

    def services(s: SinkSpec) -> Services:
        return connect(region=s.region or region, endpoint_url=endpoint_url, profile=profile)

    if spec.kind == "sns":
        return SnsSink(spec, services)
    if spec.kind == "events":
        return EventsSink(spec, services)
    return LogsSink(spec, services, create_group=create)


def start(specs: Iterable[SinkSpec], *, events: Iterable[str], clock: Clock,
          secret: str | None = None, create: bool = False, region: str | None = None,
          endpoint_url: str | None = None, profile: str | None = None,
          flush_s: float = FLUSH_S) -> Notifier:
    """A started Notifier for the specs: chat-like sinks get `events`, the others every line."""
    specs = list(specs)
    selected = frozenset(events)
    channels = [(sink_for(s, clock=clock, secret=secret, create=create, region=region,
                          endpoint_url=endpoint_url, profile=profile),
                 selected if s.chat else None) for s in specs]
    secrets = [secret] + [s.target for s in specs if s.kind in ("slack", "webhook")]
    return Notifier(channels, clock=clock, flush_s=flush_s, secrets=secrets).start()
