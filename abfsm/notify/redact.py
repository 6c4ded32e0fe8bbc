"""Keep secrets out of everything abfsm writes: URLs shown by kind and host only, and a
scrubber for texts (error messages) that might quote a secret."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"


def redact_url(url: str) -> str:
    """scheme://host[:port]/first-segment/*** — never the credentials, the path's secret part
    or the query. `https://hooks.slack.com/services/T0/B0/XYZ` -> `https://hooks.slack.com/services/***`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    segments = [s for s in parts.path.split("/") if s]
    path = f"/{segments[0]}/{MASK}" if len(segments) > 1 else (f"/{MASK}" if segments or parts.query else "")
    return f"{parts.scheme}://{host}{port}{path}"


class Scrubber:
    """Replaces every known secret (and the secret parts of URLs) in a text with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        found = [secret]
        if "://" in secret:
            parts = urlsplit(secret)
            found += [p for p in (parts.path, parts.query, parts.netloc.rpartition("@")[0]) if p]
            found += [seg for seg in parts.path.split("/") if len(seg) >= 6]
        for item in found:
            if len(item) >= 4 and item not in self._secrets:
                self._secrets.append(item)
        self._secrets.sort(key=len, reverse=True)  # the whole URL before its parts

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
