"""The delivery worker: sinks run off the caller's thread, a dead or hanging sink costs at
most the flush bound, failures are logged once (redacted), the sinks' own AWS calls are not
forwarded, and the HTTP sinks' timeouts and retry (against a receiver on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from abfsm.notify import parse_sink
from abfsm.notify import worker as worker_mod
from abfsm.notify.base import DeliveryError, Item
from abfsm.notify.http import SlackSink, WebhookSink, signature
from abfsm.notify.worker import Notifier
from tests.fakes import FakeClock
from tests.support.notify_receivers import HttpReceiver

SECRET_URL = "http://127.0.0.1:9/services/T0/B0/s3cr3tXYZtoken"


class FakeSink:
    """Records deliveries (thread, attempts); `mode`: ok | fail | hang (until released)."""

    kind, target, batch_size = "webhook", "http://127.0.0.1:9/services/***", 1

    def __init__(self, mode: str = "ok", batch_size: int = 1) -> None:
        self.mode, self.batch_size = mode, batch_size
        self.delivered: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self.attempts: list[int] = []
        self.release = threading.Event()
        self.on_deliver: Any = None

    def open(self) -> None:
        pass

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.attempts.append(attempts)
        if self.on_deliver:
            self.on_deliver()
        if self.mode == "hang":
            self.release.wait(30)
        if self.mode == "fail":
            raise DeliveryError(f"POST {SECRET_URL} answered HTTP 500")
        self.delivered.extend(i.event for i in batch)

    def close(self) -> None:
        pass


def ev(name: str, **keys: Any) -> dict[str, Any]:
    return {"event": name, "run_id": "r1", "env": "qa", **keys}


def failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "notify.failed"]


def test_events_are_delivered_in_order_on_the_sinks_own_thread():
    """Every event reaches an all-events sink in order, delivered on its worker thread."""
    sink = FakeSink()
    n = Notifier([(sink, None)]).start()
    for i in range(5):
        n.tap(ev("transition", n=i))
    n.close()
    assert [e["n"] for e in sink.delivered] == [0, 1, 2, 3, 4]
    assert sink.threads == {"abfsm-notify-webhook"}


def test_a_chat_sink_gets_only_the_selected_events():
    """A sink with a selection gets those events only."""
    sink = FakeSink()
    n = Notifier([(sink, frozenset({"run.started", "run.finished"}))]).start()
    for name in ("run.started", "transition", "state.failed", "run.finished"):
        n.tap(ev(name))
    n.close()
    assert [e["event"] for e in sink.delivered] == ["run.started", "run.finished"]


def test_a_hanging_sink_costs_at_most_the_flush_bound():
    """close() with a sink stuck mid-delivery returns after the bound and says it gave up."""
    sink = FakeSink("hang")
    n = Notifier([(sink, None)], flush_s=0.3).start()
    n.tap(ev("run.started"))
    n.tap(ev("run.finished"))
    with capture_logs() as logs:
        begun = time.monotonic()
        n.close()
        waited = time.monotonic() - begun
    sink.release.set()
    assert 0.25 <= waited < 1.0
    (failed,) = failures(logs)
    assert failed["reason"].startswith("not delivered within the 0.3 s bound")
    assert (failed["sink"], failed["run_id"], failed["env"]) == ("webhook", "r1", "qa")


def test_tap_never_blocks_on_a_hanging_sink(monkeypatch):
    """With the sink stuck and its queue full, tapping 50 events returns at once (extra dropped)."""
    monkeypatch.setattr(worker_mod, "QUEUE_MAX", 5)
    sink = FakeSink("hang")
    n = Notifier([(sink, None)], flush_s=0.1).start()
    begun = time.monotonic()
    for i in range(50):
        n.tap(ev("transition", n=i))
    assert time.monotonic() - begun < 0.5
    assert n._channels[0].dropped >= 40
    with capture_logs():
        n.close()
    sink.release.set()


def test_a_failing_sink_is_logged_once_with_the_secret_scrubbed():
    """Three failed deliveries: one notify.failed; its reason masks the secret URL path."""
    sink = FakeSink("fail")
    n = Notifier([(sink, None)], secrets=[SECRET_URL]).start()
    with capture_logs() as logs:
        for name in ("run.started", "state.failed", "run.finished"):
            n.tap(ev(name))
        n.close()
    (failed,) = failures(logs)
    assert "s3cr3t" not in str(failed) and "***" in failed["reason"]
    assert failed["target"] == "http://127.0.0.1:9/services/***"


def test_after_a_failure_a_sink_gets_one_attempt_per_delivery():
    """Deliveries retry while a sink works; once it has failed, each gets a single attempt."""
    sink = FakeSink("fail")
    n = Notifier([(sink, None)]).start()
    with capture_logs():
        for name in ("run.started", "state.failed", "run.finished"):
            n.tap(ev(name))
        n.close()
    assert sink.attempts == [worker_mod.ATTEMPTS, 1, 1]


def test_the_sinks_own_aws_calls_are_not_forwarded():
    """An aws.call logged on a sink's worker thread reaches no sink; one from the run does."""
    noisy, everything = FakeSink(), FakeSink()
    n = Notifier([(noisy, frozenset({"run.started"})), (everything, None)])
    called = threading.Event()

    def publish() -> None:  # what an SNS sink's Publish logs, on the sink's thread
        n.tap(ev("aws.call", service="sns", action="Publish"))
        called.set()

    noisy.on_deliver = publish
    n.start()
    n.tap(ev("run.started"))
    assert called.wait(5)
    n.tap(ev("aws.call", service="autoscaling", action="UpdateAutoScalingGroup"))
    n.close()
    assert [(e["event"], e.get("service")) for e in everything.delivered] == [
        ("run.started", None), ("aws.call", "autoscaling")]


def test_a_batching_sink_gets_queued_events_together_in_order():
    """A sink with batch_size > 1 takes what is queued in one delivery, order kept."""
    sink = FakeSink(batch_size=100)
    gate = threading.Event()
    sink.on_deliver = lambda: gate.wait(5)
    n = Notifier([(sink, None)]).start()
    for i in range(20):
        n.tap(ev("transition", n=i))
    gate.set()
    n.close()
    assert [e["n"] for e in sink.delivered] == list(range(20)) and len(sink.attempts) <= 3


def test_the_items_carry_the_runs_start_event():
    """Each queued item after run.started carries it (Slack names who started the run)."""
    got: list[Item] = []
    sink = FakeSink()
    sink.deliver = lambda batch, attempts: got.extend(batch)  # type: ignore[method-assign]
    n = Notifier([(sink, None)]).start()
    n.tap(ev("run.started", started_by={"user": "ci"}))
    n.tap(ev("run.finished"))
    n.close()
    assert got[1].started is not None and got[1].started["started_by"] == {"user": "ci"}


# -- the HTTP sinks against a receiver on 127.0.0.1 ------------------------------------------

def test_webhook_posts_the_log_line_signed():
    """The webhook body is the event's JSON log line; X-Abfsm-Signature verifies with the secret."""
    with HttpReceiver() as rx:
        sink = WebhookSink(parse_sink(f"webhook:{rx.url('/in/tok3n')}"), FakeClock(), secret="k3y")
        sink.deliver([Item({"ts": "2026-01-01T00:00:00Z", "level": "info", "event": "run.finished",
                            "run_id": "r1", "env": "qa", "outcome": "done"})], attempts=2)
    (req,) = rx.requests
    assert req.body == (b'{"ts":"2026-01-01T00:00:00Z","level":"info","event":"run.finished",'
                        b'"run_id":"r1","env":"qa","outcome":"done"}')
    assert req.headers["X-Abfsm-Signature"] == signature("k3y", req.body)
    assert req.headers["X-Abfsm-Event"] == "run.finished"


def test_an_http_500_is_retried_once_after_a_backoff_on_the_injected_clock():
    """A 500 gets one retry after BACKOFF_S (slept on the clock), then DeliveryError('HTTP 500')."""
    clock = FakeClock()
    with HttpReceiver("error") as rx:
        sink = SlackSink(parse_sink(f"slack:{rx.url()}"), clock)
        with pytest.raises(DeliveryError, match="^HTTP 500$"):
            sink.deliver([Item(ev("run.finished"))], attempts=2)
    assert len(rx.requests) == 2 and clock.sleeps == [0.5]


def test_a_hanging_receiver_times_out_per_attempt():
    """A receiver that never answers costs one read timeout per attempt, then DeliveryError."""
    with HttpReceiver("hang") as rx:
        sink = SlackSink(parse_sink(f"slack:{rx.url()}"), FakeClock(), read_s=0.2)
        begun = time.monotonic()
        with pytest.raises(DeliveryError, match="no answer within 0.2 s"):
            sink.deliver([Item(ev("run.finished"))], attempts=2)
        assert time.monotonic() - begun < 1.5
    assert len(rx.requests) == 2


def test_a_refused_connection_is_a_delivery_error_without_the_path():
    """Nothing listening: DeliveryError names the OS error, not the URL's secret path."""
    sink = WebhookSink(parse_sink(f"webhook:{SECRET_URL}"), FakeClock())
    with pytest.raises(DeliveryError) as info:
        sink.deliver([Item(ev("run.finished"))], attempts=1)
    assert "s3cr3t" not in str(info.value) and "refused" in str(info.value).lower()


# -- the syslog sink against sockets on this machine -----------------------------------------

def test_syslog_unix_socket_gets_one_rfc5424_datagram_per_event(tmp_path):
    """syslog:unix:///PATH sends each event as one RFC 5424 datagram (error -> <11>)."""
    import socket

    from abfsm.notify.syslog import SyslogSink

    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(str(path))
        rx.settimeout(2)
        sink = SyslogSink(parse_sink(f"syslog:unix://{path}"))
        sink.open()
        sink.deliver([Item(ev("state.failed", level="error")), Item(ev("run.finished", level="info"))],
                     attempts=2)
        sink.close()
        got = [rx.recv(65536), rx.recv(65536)]
    assert [g.split(b" ")[0] for g in got] == [b"<11>1", b"<14>1"]
    assert [g.split(b" ")[5] for g in got] == [b"state.failed", b"run.finished"]


def test_a_syslog_tcp_port_with_nobody_listening_is_a_delivery_error():
    """syslog:tcp:// to a closed port fails with DeliveryError naming the transport, at once."""
    from abfsm.notify.syslog import SyslogSink

    sink = SyslogSink(parse_sink("syslog:tcp://127.0.0.1:9"))
    with pytest.raises(DeliveryError, match="cannot reach tcp://127.0.0.1:9: Connection refused"):
        sink.deliver([Item(ev("run.started"))], attempts=2)
