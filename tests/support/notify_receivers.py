"""Receivers on 127.0.0.1 for the notification tests: an HTTP server playing Slack or a
webhook receiver (answering 200, 500, or hanging), and syslog listeners (UDP, TCP)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """`with HttpReceiver(mode) as rx:` — rx.url(path); rx.requests. mode: ok | error | hang.
    A hanging request waits up to `hang_s` (released at once when the receiver closes)."""

    def __init__(self, mode: str = "ok", hang_s: float = 30.0) -> None:
        self.mode, self.hang_s = mode, hang_s
        self.requests: list[Request] = []
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
                if receiver.mode == "hang":
                    receiver._release.wait(receiver.hang_s)
                code = 500 if receiver.mode == "error" else 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def bodies(self) -> list[Any]:
        return [r.json for r in self.requests]

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class SyslogReceiver:
    """`with SyslogReceiver("udp"|"tcp") as rx:` — rx.address ("udp://127.0.0.1:PORT"), rx.messages."""

    def __init__(self, transport: str = "udp") -> None:
        self.transport = transport
        self.messages: list[bytes] = []
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self._sock = socket.socket(socket.AF_INET, kind)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        if transport == "tcp":
            self._sock.listen(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.transport}://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.transport == "udp":
                    self.messages.append(self._sock.recv(65536))
                else:
                    conn, _ = self._sock.accept()
                    threading.Thread(target=self._read_frames, args=(conn,), daemon=True).start()
            except (TimeoutError, OSError):
                continue

    def _read_frames(self, conn: socket.socket) -> None:
        """RFC 6587 octet counting: `LEN SP MSG` repeated."""
        buf = b""
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except (TimeoutError, OSError):
                    continue
                if not chunk:
                    return
                buf += chunk
                while b" " in buf:
                    length, _, rest = buf.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[:int(length)])
                    buf = rest[int(length):]

    def __enter__(self) -> SyslogReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
