"""Fixtures of the adapter tests: count the API calls a boto3 client makes; moto executing
Step Functions state machines (`sfn_make`) and a frozen world model (`frozen_world`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
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


@pytest.fixture
def sfn_make() -> Iterator[Callable[[str], Any]]:
    """In-process moto with Step Functions executions enabled (tests/support/sfn_moto.py)."""
    from abfsm.sfn import engine
    from tests.support.sfn_moto import executing_moto

    saved, engine.FOLLOW_INTERVAL_S = engine.FOLLOW_INTERVAL_S, 0.25  # in process: poll more
    try:
        with executing_moto() as make:
            yield make
    finally:
        engine.FOLLOW_INTERVAL_S = saved


@pytest.fixture
def frozen_world(sfn_make: Callable[[str], Any]) -> Iterator[None]:
    """The emulator's world model, frozen: new instances never leave Pending."""
    from abfsm.emulator import world as world_model

    world_model.activate(world_model.World(world_model.WorldClock(scale=0.0)))
    yield
    world_model.deactivate()
