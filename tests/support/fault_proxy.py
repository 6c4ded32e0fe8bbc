"""An HTTP proxy in front of moto_server that changes the world at a chosen AWS call.

moto makes instances InService at once, so "the new instances never become healthy in the
ELB" cannot be arranged before a run (the instances do not exist yet) and racing the CLI
subprocess is not deterministic. Pointing the CLI's AWS_ENDPOINT_URL at this proxy is:

    with FaultProxy(server.endpoint) as proxy:
        proxy.before("DescribeInstanceHealth", lambda: ec2.stop_instances(...))
        cli(..., extra_env={"AWS_ENDPOINT_URL": proxy.endpoint})

The callback runs once, just before the first request with that action is forwarded (the
CLI waits for the answer meanwhile). Every request is forwarded unchanged, so moto_server's
call recorder still sees them all. `before` knows query-protocol services only (autoscaling,
elb, ec2); the faults below also match S3's REST requests.

Faults (each matches requests by `Match`: a query Action, or an HTTP method plus a header
the request must carry, e.g. S3's conditional PutObject with If-Match):

    proxy.hang(Match(action="DescribeAutoScalingGroups"))   # never answered (until exit)
    proxy.fail(Match(action="DescribeAutoScalingGroups"))   # answered 500, not forwarded
    proxy.lose_answer(Match(method="PUT", header="If-Match"), how="500" | "reset")
        # forwarded (the write happens), then the answer is lost: a 500, or the connection
        # reset. The client's retry of it then meets its own write.

`count` limits how many requests a fault takes (default: all). `seen` counts the requests
each fault matched; `wait_seen(match, n)` blocks until it has matched n.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Not copied: hop-by-hop headers, the length (set anew), and what send_response adds itself.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
_ERROR_BODY = (b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code>"
               b"<Message>injected by the fault proxy</Message></Error>"
               b"<RequestId>fault</RequestId></ErrorResponse>")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a CLI interrupted mid-call) is no error of the proxy's."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Match:
    """Which requests a fault applies to: all given fields must match."""

    action: str | None = None  # query-protocol Action
    method: str | None = None  # HTTP method (S3: PUT is PutObject, DELETE is DeleteObject)
    header: str | None = None  # a header the request carries (e.g. If-Match, If-None-Match)

    def __call__(self, method: str, headers: Any, action: str) -> bool:
        return ((self.action is None or self.action == action)
                and (self.method is None or self.method == method)
                and (self.header is None or self.header in headers))


@dataclass
class _Fault:
    match: Match
    how: str  # hang | fail | lose-500 | lose-reset
    count: int | None
    seen: int = 0
    done: list[int] = field(default_factory=list)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._hooks: dict[str, Callable[[], Any]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.fired: list[str] = []
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def before(self, action: str, callback: Callable[[], Any]) -> None:
        """Run `callback` once, before forwarding the first request for `action`."""
        self._hooks[action] = callback

    def hang(self, match: Match, count: int | None = None) -> None:
        """Never answer matching requests (they are released when the proxy closes)."""
        self._faults.append(_Fault(match, "hang", count))

    def fail(self, match: Match, count: int | None = None) -> None:
        """Answer matching requests with a 500 InternalError without forwarding them."""
        self._faults.append(_Fault(match, "fail", count))

    def lose_answer(self, match: Match, *, how: str = "500", count: int | None = 1) -> None:
        """Forward matching requests, then lose the answer: a 500 instead, or a reset."""
        assert how in ("500", "reset")
        self._faults.append(_Fault(match, f"lose-{how}", count))

    def seen(self, match: Match) -> int:
        with self._lock:
            return sum(f.seen for f in self._faults if f.match == match)

    def wait_seen(self, match: Match, n: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.seen(match) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy saw {self.seen(match)} of {n} {match} requests")
            time.sleep(0.01)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _fire(self, action: str) -> None:
        with self._lock:
            callback = self._hooks.pop(action, None)
            if callback is not None:
                callback()
                self.fired.append(action)

    def _take(self, method: str, headers: Any, action: str) -> str:
        with self._lock:
            for fault in self._faults:
                if fault.match(method, headers, action) and (fault.count is None
                                                             or fault.seen < fault.count):
                    fault.seen += 1
                    return fault.how
        return ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = ""
                if self.command == "POST" and body:
                    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
                    proxy._fire(action)
                how = proxy._take(self.command, self.headers, action)
                if how == "hang":
                    proxy._closing.wait()
                    self.close_connection = True
                    return
                if how == "fail":
                    self._answer(500, [("Content-Type", "text/xml")], _ERROR_BODY)
                    return
                status, headers, data = self._upstream_answer(body)
                if how == "lose-500":
                    self._answer(500, [("Content-Type", "text/xml")], _ERROR_BODY)
                elif how == "lose-reset":
                    # SO_LINGER 0: closing sends RST, the client sees a reset, not an answer.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                else:
                    self._answer(status, headers, data)

            def _upstream_answer(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in _HOP_HEADERS}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    return resp.status, resp.getheaders(), resp.read()
                finally:
                    conn.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, *_: Any) -> None:  # quiet
                pass

        return Handler
