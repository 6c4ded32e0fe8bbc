"""`--notify SINK` and `--notify-on EVENTS`: parsed and checked before any AWS call.

A SinkSpec is what a user handed in. Its `target` may be a credential (a Slack or webhook
URL): `str()`, `repr()` and `redacted` never show it, and only `redacted` is ever stored.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from abfsm.errors import UsageError
from abfsm.notify.redact import redact_url

KINDS = ("slack", "webhook", "sns", "events", "logs", "syslog")
# Chat-like sinks get the --notify-on events; the others get every log line.
CHAT = frozenset({"slack", "webhook", "sns", "events"})
DEFAULT_EVENTS = ("run.started", "state.failed", "run.finished")
# Events other helpers' features log that may not be in this checkout's schema yet.
EXTRA_EVENTS = frozenset({"approval.pending"})

_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_BUS_NAME = re.compile(r"^[A-Za-z0-9._\-/]{1,256}$")
_BUS_ARN = re.compile(r"^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[A-Za-z0-9._\-/]{1,256}$")
_GROUP = re.compile(r"^[A-Za-z0-9._\-/#]{1,512}$")
_STREAM = re.compile(r"^[^:*]{1,512}$")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True, repr=False)
class SinkSpec:
    """One `--notify` value: its kind and its target (possibly secret)."""

    kind: str
    target: str

    @property
    def redacted(self) -> str:
        """What logs, records and messages may show: `kind:target` with secrets masked."""
        return f"{self.kind}:{self.shown_target}"

    @property
    def shown_target(self) -> str:
        """The target with secrets masked (a Slack or webhook URL by host only)."""
        return redact_url(self.target) if self.kind in ("slack", "webhook") else self.target

    @property
    def chat(self) -> bool:
        return self.kind in CHAT

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"SinkSpec({self.redacted!r})"

    def aws_calls(self, *, create: bool = False) -> list[str]:
        """The IAM actions this sink needs (none for HTTP and syslog sinks)."""
        if self.kind == "sns":
            return ["sns:Publish"]
        if self.kind == "events":
            return ["events:PutEvents"]
        if self.kind == "logs":
            return (["logs:CreateLogGroup"] if create else []) + ["logs:CreateLogStream",
                                                                  "logs:PutLogEvents"]
        return []

    @property
    def resource(self) -> str | None:
        """The ARN (pattern) those calls act on, for an IAM policy."""
        if self.kind == "sns":
            return self.target
        if self.kind == "events":
            return self.target if self.target.startswith("arn:") else f"arn:aws:events:*:*:event-bus/{self.target}"
        if self.kind == "logs":
            return f"arn:aws:logs:*:*:log-group:{self.log_group}:*"
        return None

    # -- parts of the target, per kind -------------------------------------------------------

    @property
    def log_group(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def log_stream(self) -> str | None:
        _, _, stream = self.target.partition(":")
        return stream or None

    @property
    def region(self) -> str | None:
        """The region an ARN target names (an SNS topic, an event bus ARN)."""
        parts = self.target.split(":")
        return parts[3] if self.target.startswith("arn:") and len(parts) > 3 and parts[3] else None


def parse_sink(text: str, *, origin: str = "--notify") -> SinkSpec:
    """Parse and check one SINK string; a UsageError (exit 2) names what is wrong, redacted."""
    kind, sep, target = text.partition(":")
    if not sep or kind not in KINDS:
        shown = kind if sep else _first(text)
        raise UsageError(f"{origin} {shown!r}: unknown sink kind (one of {', '.join(KINDS)}, "
                         "e.g. slack:https://hooks.slack.com/services/...)")
    spec = SinkSpec(kind, target)
    problem = _problem(spec)
    if problem:
        raise UsageError(f"{origin} {spec.redacted}: {problem}")
    return spec


def parse_sinks(flags: list[str] | None, env_value: str | None) -> list[SinkSpec]:
    """ABFSM_NOTIFY's sinks (space-separated) then the --notify flags; duplicates once."""
    specs = [parse_sink(t, origin="ABFSM_NOTIFY") for t in (env_value or "").split()]
    specs += [parse_sink(t) for t in flags or []]
    return list(dict.fromkeys(specs))


def parse_events(text: str | None, known: set[str] | frozenset[str]) -> list[str]:
    """`--notify-on` as a list of event names (default: DEFAULT_EVENTS)."""
    if text is None:
        return list(DEFAULT_EVENTS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--notify-on: name at least one log event (e.g. run.started,run.finished)")
    unknown = [n for n in names if n not in known and n not in EXTRA_EVENTS]
    if unknown:
        raise UsageError(f"--notify-on: unknown event {', '.join(map(repr, unknown))} "
                         f"(events are listed in the README's log table, e.g. {', '.join(DEFAULT_EVENTS)})")
    return list(dict.fromkeys(names))


def _first(text: str) -> str:
    return text if len(text) <= 20 else text[:17] + "..."


def _problem(spec: SinkSpec) -> str | None:
    kind, target = spec.kind, spec.target
    if kind in ("slack", "webhook"):
        return _url_problem(target)
    if kind == "sns":
        return None if _SNS_ARN.match(target) else "not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
    if kind == "events":
        ok = _BUS_ARN.match(target) if target.startswith("arn:") else _BUS_NAME.match(target)
        return None if ok else "not an EventBridge bus name or ARN (e.g. events:default)"
    if kind == "logs":
        group, _, stream = target.partition(":")
        if not _GROUP.match(group):
            return "not a log group name (letters, digits, . _ - / #), as logs:GROUP[:STREAM]"
        if stream and not _STREAM.match(stream):
            return "not a log stream name (no : or *)"
        return None
    return _syslog_problem(target)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a URL"
    if not host:
        return "not a URL (https://HOST/...)"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        return None if _loopback(host) else "http is allowed only for loopback addresses; use https"
    return "not an https URL"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _syslog_problem(target: str) -> str | None:
    usage = "use syslog:udp://HOST:PORT, syslog:tcp://HOST:PORT or syslog:unix:///dev/log"
    scheme, sep, rest = target.partition("://")
    if not sep or scheme not in ("udp", "tcp", "unix"):
        return usage
    if scheme == "unix":
        return None if rest.startswith("/") and len(rest) > 1 else usage
    found = _HOST_PORT.match(rest)
    if not found or not 0 < int(found["port"]) < 65536:
        return usage
    return None


def syslog_address(spec: SinkSpec) -> tuple[str, str | tuple[str, int]]:
    """(transport, address) of a syslog sink: ("udp", (host, port)) or ("unix", path)."""
    scheme, _, rest = spec.target.partition("://")
    if scheme == "unix":
        return scheme, rest
    found = _HOST_PORT.match(rest)
    assert found is not None  # checked by parse_sink
    return scheme, (found["host"].strip("[]"), int(found["port"]))
