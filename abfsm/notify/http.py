"""HTTP sinks: a Slack incoming webhook (Block Kit) and a plain JSON webhook (the log event,
signed with HMAC-SHA256 when ABFSM_WEBHOOK_SECRET is set). urllib3, short timeouts, a retry
on 5xx / 429 / connection errors, no redirects."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from abfsm import __version__
from abfsm.clock import Clock
from abfsm.log import json_line
from abfsm.notify import slack
from abfsm.notify.base import DeliveryError, Item
from abfsm.notify.parse import SinkSpec

CONNECT_S, READ_S = 2.0, 3.0  # per attempt
BACKOFF_S = 0.5  # before the one retry
SIGNATURE_HEADER = "X-Abfsm-Signature"


def signature(secret: str, body: bytes) -> str:
    """The X-Abfsm-Signature value: `sha256=` + the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _Post:
    """POST bytes to one URL with a bounded cost: attempts x (connect + read timeout) + backoff."""

    def __init__(self, url: str, clock: Clock, *, connect_s: float = CONNECT_S,
                 read_s: float = READ_S, backoff_s: float = BACKOFF_S) -> None:
        import urllib3

        self._url = url
        self._clock = clock
        self._backoff_s = backoff_s
        self._timeouts = (connect_s, read_s)
        self._pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=connect_s, read=read_s),
                                         retries=False, num_pools=1)

    def __call__(self, body: bytes, headers: dict[str, str], *, attempts: int) -> None:
        import urllib3

        reason = "not sent"
        for attempt in range(max(1, attempts)):
            if attempt:
                self._clock.sleep(self._backoff_s)
            try:
                resp = self._pool.request("POST", self._url, body=body, headers=headers,
                                          redirect=False, preload_content=True)
            except urllib3.exceptions.NewConnectionError as exc:  # before its base ConnectTimeoutError
                reason = _reason(exc)
                continue
            except urllib3.exceptions.ReadTimeoutError:
                reason = f"no answer within {self._timeouts[1]:g} s"
                continue
            except urllib3.exceptions.ConnectTimeoutError:
                reason = f"no connection within {self._timeouts[0]:g} s"
                continue
            except urllib3.exceptions.HTTPError as exc:
                reason = _reason(exc)
                continue
            if 200 <= resp.status < 300:
                return
            reason = f"HTTP {resp.status}"
            if resp.status < 500 and resp.status != 429:
                break  # the receiver refused the message: sending it again will not help
        raise DeliveryError(reason)

    def close(self) -> None:
        self._pool.clear()


def _reason(exc: Exception) -> str:
    inner: Any = getattr(exc, "reason", None) or exc
    text = str(inner)
    # urllib3 puts "HTTPConnection(host=..., port=...): " before the OS error; keep the error.
    return text.rpartition("): ")[2] or type(exc).__name__


class SlackSink:
    batch_size = 1

    def __init__(self, spec: SinkSpec, clock: Clock, **timeouts: float) -> None:
        self.kind, self.target = spec.kind, spec.shown_target
        self._post = _Post(spec.target, clock, **timeouts)

    def open(self) -> None:
        pass

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        for item in batch:
            body = json.dumps(slack.message(item.event, item.started)).encode()
            self._post(body, {"Content-Type": "application/json",
                              "User-Agent": f"abfsm/{__version__}"}, attempts=attempts)

    def close(self) -> None:
        self._post.close()


class WebhookSink:
    batch_size = 1

    def __init__(self, spec: SinkSpec, clock: Clock, *, secret: str | None = None,
                 **timeouts: float) -> None:
        self.kind, self.target = spec.kind, spec.shown_target
        self._secret = secret
        self._post = _Post(spec.target, clock, **timeouts)

    def open(self) -> None:
        pass

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        for item in batch:
            body = json_line(item.event).encode()
            headers = {"Content-Type": "application/json", "User-Agent": f"abfsm/{__version__}",
                       "X-Abfsm-Event": str(item.event.get("event"))}
            if self._secret:
                headers[SIGNATURE_HEADER] = signature(self._secret, body)
            self._post(body, headers, attempts=attempts)

    def close(self) -> None:
        self._post.close()
