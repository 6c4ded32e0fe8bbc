"""An HTTP proxy in front of moto_server that changes the world at a chosen AWS call.

moto makes instances InService at once, so "the new instances never become healthy in the
ELB" cannot be arranged before a run (the instances do not exist yet) and racing the CLI
subprocess is not deterministic. Pointing the CLI's AWS_ENDPOINT_URL at this proxy is:

    with FaultProxy(server.endpoint) as proxy:
        proxy.before("DescribeInstanceHealth", lambda: ec2.stop_instances(...))
        cli(..., extra_env={"AWS_ENDPOINT_URL": proxy.endpoint})

The callback runs once, just before the first request with that action is forwarded (the
CLI waits for the answer meanwhile). Every request is forwarded unchanged, so moto_server's
call recorder still sees them all. Query-protocol services only (autoscaling, elb, ec2).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Not copied: hop-by-hop headers, the length (set anew), and what send_response adds itself.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._hooks: dict[str, Callable[[], Any]] = {}
        self._lock = threading.Lock()
        self.fired: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def before(self, action: str, callback: Callable[[], Any]) -> None:
        """Run `callback` once, before forwarding the first request for `action`."""
        self._hooks[action] = callback

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fire(self, body: bytes) -> None:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        with self._lock:
            callback = self._hooks.pop(action, None)
            if callback is not None:
                callback()
                self.fired.append(action)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "POST" and body:
                    proxy._fire(body)
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in _HOP_HEADERS}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
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
