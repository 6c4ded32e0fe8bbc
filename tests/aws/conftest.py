"""Fixtures of the adapter tests: count the API calls a boto3 client makes."""

from __future__ import annotations

import threading
from typing import Any

import pytest


class ApiCalls:
    """Operation names of every call the watched clients make (once per call, not per retry)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._lock = threading.Lock()

    def watch(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self._record)
        return client

    def count(self, action: str) -> int:
        return self.names.count(action)

    def _record(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.names.append(model.name)


@pytest.fixture
def api_calls() -> ApiCalls:
    return ApiCalls()
