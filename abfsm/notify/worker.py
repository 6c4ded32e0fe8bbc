"""Deliver log events to sinks off the state machine's thread, at a bounded cost.

The Notifier is a log tap (abfsm.log.add_tap): for every event it puts a copy on the queue
of each sink that wants it (never blocking: a full queue drops the event). Each sink has its
own daemon thread, so a slow sink delays no other. `close()` hands every queue a stop mark
and waits for all of them together at most `flush_s` seconds: a dead or hanging sink costs
the run at most that, at the end, and never changes its exit code. A sink's first failure is
logged once as `notify.failed` (kind, redacted target, reason with secrets scrubbed).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from abfsm.clock import Clock, SystemClock
from abfsm.notify.base import Item, Sink
from abfsm.notify.redact import Scrubber

FLUSH_S = 5.0  # the most a run waits at its end for its notifications
ATTEMPTS = 2  # per delivery while a sink works; 1 once it has failed
QUEUE_MAX = 10_000
_OWN_CALLS = frozenset({"aws.call", "aws.read"})  # the sinks' own AWS calls are not forwarded
_STOP = object()


def _logger() -> Any:
    import structlog

    return structlog.get_logger("abfsm.notify")


class _Channel:
    """One sink, its queue and its thread."""

    def __init__(self, sink: Sink, select: frozenset[str] | None,
                 report: Callable[[Sink, str], None]) -> None:
        self.sink = sink
        self.select = select  # None: every event (logs, syslog)
        self.queue: queue.Queue[Any] = queue.Queue(QUEUE_MAX)
        self.failed = False
        self.dropped = 0
        self._failed_lock = threading.Lock()
        self._report = report
        self.thread = threading.Thread(target=self._run, name=f"abfsm-notify-{sink.kind}", daemon=True)

    def wants(self, event: dict[str, Any]) -> bool:
        return self.select is None or event.get("event") in self.select

    def offer(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        opened = False
        stop = False
        while not stop:
            first = self.queue.get()
            if first is _STOP:
                break
            if not opened:  # with the first event: the run (run_id, env) is known by then
                opened = True
                try:
                    self.sink.open()
                except Exception as exc:  # noqa: BLE001 - a sink's failure is reported, never raised
                    self._fail(exc)
            batch = [first]
            while len(batch) < self.sink.batch_size:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            try:
                self.sink.deliver(batch, attempts=1 if self.failed else ATTEMPTS)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001
            pass

    def claim_failure(self) -> bool:
        """True exactly once: the caller reports this sink's failure (worker and close() race)."""
        with self._failed_lock:
            first, self.failed = not self.failed, True
            return first

    def _fail(self, exc: Exception) -> None:
        if self.claim_failure():
            self._report(self.sink, str(exc) or type(exc).__name__)


class Notifier:
    """The running notifications of one process: start(), the tap, close()."""

    def __init__(self, channels: Iterable[tuple[Sink, frozenset[str] | None]], *,
                 clock: Clock | None = None, flush_s: float = FLUSH_S,
                 secrets: Iterable[str | None] = ()) -> None:
        self._clock = clock or SystemClock()
        self._flush_s = flush_s
        self._scrub = Scrubber(s for s in secrets if s)
        self._bound: dict[str, Any] = {}  # run_id / env of the run, for notify.failed
        self._started: dict[str, Any] | None = None
        self._channels = [_Channel(sink, select, self._report) for sink, select in channels]
        self._threads = {ch.thread for ch in self._channels}
        self._closed = False

    @property
    def sinks(self) -> list[Sink]:
        return [ch.sink for ch in self._channels]

    def start(self) -> Notifier:
        for ch in self._channels:
            ch.thread.start()
        return self

    def tap(self, event: dict[str, Any]) -> None:
        """abfsm.log's tap: queue the event for every sink that wants it. Never blocks."""
        if self._closed:
            return
        name = event.get("event")
        if name in _OWN_CALLS and threading.current_thread() in self._threads:
            return
        for key in ("run_id", "env"):
            if event.get(key):
                self._bound[key] = event[key]
        if name == "run.started":
            self._started = event
        item = Item(event, self._started)
        for ch in self._channels:
            if ch.wants(event):
                ch.offer(item)

    def close(self) -> float:
        """Flush within the bound; returns the seconds it waited. Never raises."""
        if self._closed:
            return 0.0
        self._closed = True
        begun = self._clock.monotonic()
        for ch in self._channels:
            ch.offer(_STOP)
        for ch in self._channels:
            ch.thread.join(max(0.0, self._flush_s - (self._clock.monotonic() - begun)))
        for ch in self._channels:
            if ch.thread.is_alive() and ch.claim_failure():
                self._report(ch.sink, f"not delivered within the {self._flush_s:g} s bound at the "
                                      f"end of the run ({ch.queue.qsize()} event(s) left)")
            elif ch.dropped and ch.claim_failure():
                self._report(ch.sink, f"{ch.dropped} event(s) dropped: the sink could not keep up")
        return self._clock.monotonic() - begun

    def _report(self, sink: Sink, reason: str) -> None:
        try:
            log = _logger()
            # run_id/env explicitly: a worker thread does not see the run's bound context.
            log.warning("notify.failed", sink=sink.kind, target=sink.target,
                        reason=self._scrub(reason), **self._bound)
        except Exception:  # noqa: BLE001 - reporting must never break the run either
            pass
