"""Syslog: RFC 5424 messages over UDP, TCP (RFC 6587 octet counting) or a unix socket.

    <PRI>1 TIMESTAMP HOSTNAME abfsm PROCID EVENT [abfsm@32473 run_id="..." env="..."] JSON

PRI is facility user (1) x 8 + the severity of the event's level; MSGID is the event name;
MSG is the event's JSON log line.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from abfsm.log import json_line
from abfsm.notify.base import DeliveryError, Item, event_time
from abfsm.notify.parse import SinkSpec, syslog_address

FACILITY_USER = 1
SEVERITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
TIMEOUT_S = 2.0
MAX_UDP = 8192  # bytes per datagram; longer messages are cut
_SD_ID = "abfsm@32473"  # 32473: the private enterprise number reserved for examples (RFC 5612)


def format_5424(event: dict[str, Any], *, hostname: str, pid: int,
                facility: int = FACILITY_USER) -> bytes:
    """One RFC 5424 message for a log event."""
    pri = facility * 8 + SEVERITY.get(str(event.get("level", "info")), 6)
    moment = event_time(event).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    msgid = _printable(str(event.get("event") or "-"), 32)
    params = " ".join(f'{k}="{_sd_escape(str(event[k]))}"' for k in ("run_id", "env") if event.get(k))
    sd = f"[{_SD_ID} {params}]" if params else "-"
    head = f"<{pri}>1 {moment} {_printable(hostname, 255)} abfsm {pid} {msgid} {sd} "
    return head.encode() + json_line(event).encode()


def _printable(text: str, limit: int) -> str:
    out = "".join(c for c in text if 33 <= ord(c) <= 126)
    return out[:limit] or "-"


def _sd_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


class SyslogSink:
    batch_size = 100

    def __init__(self, spec: SinkSpec) -> None:
        self.kind, self.target = spec.kind, spec.shown_target
        self._transport, self._address = syslog_address(spec)
        self._sock: socket.socket | None = None
        self._hostname = socket.gethostname()
        self._pid = os.getpid()

    def open(self) -> None:
        self._connect()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock: socket.socket | None = None
        try:
            if self._transport == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            else:
                assert isinstance(self._address, tuple)
                host, port = self._address
                family = socket.getaddrinfo(host, port)[0][0]
                kind = socket.SOCK_DGRAM if self._transport == "udp" else socket.SOCK_STREAM
                sock = socket.socket(family, kind)
            sock.settimeout(TIMEOUT_S)
            sock.connect(self._address)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise DeliveryError(f"cannot reach {self.target}: {exc.strerror or exc}") from None
        self._sock = sock
        return sock

    def deliver(self, batch: list[Item], *, attempts: int) -> None:
        for item in batch:
            message = format_5424(item.event, hostname=self._hostname, pid=self._pid)
            for attempt in range(max(1, attempts)):
                try:
                    self._send(message)
                    break
                except OSError as exc:
                    self._drop()
                    if attempt + 1 >= max(1, attempts):
                        raise DeliveryError(f"send failed: {exc.strerror or exc}") from None

    def _send(self, message: bytes) -> None:
        sock = self._connect()
        if self._transport == "tcp":
            sock.sendall(str(len(message)).encode() + b" " + message)
        else:
            sock.send(message[:MAX_UDP])

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._drop()
