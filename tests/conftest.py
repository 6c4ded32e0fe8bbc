"""Shared fixtures: the emulator's moto corrections (and its world model on request), fake AWS
credentials, a clean structlog per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from abfsm.emulator import fixes
from tests.fakes import FakeClock
from tests.support.aws_env import CREDENTIALS, REGION, client_factory, fake_aws_environment


@pytest.fixture(autouse=True, scope="session")
def _fake_aws_environment() -> Iterator[None]:
    """No real credentials or config can leak in; boto3 talks to moto only."""
    saved = dict(os.environ)
    fake_aws_environment()
    fixes.apply()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aws() -> Iterator[Any]:
    """In-process moto: yields a `make(service)` boto3 client factory."""
    from moto import mock_aws

    with mock_aws():
        yield client_factory()


@pytest.fixture
def services(aws: Any) -> Any:
    """abfsm's adapters over in-process moto."""
    from abfsm.aws import connect

    return connect(region=REGION, credentials=CREDENTIALS)


@pytest.fixture
def world(aws: Any) -> Iterator[Any]:
    """The emulator's world model over in-process moto, frozen (scale 0): the test moves time
    with `world.advance(seconds)`. Without this fixture moto's instant world applies."""
    from abfsm.emulator import world as world_model

    frozen = world_model.activate(world_model.World(world_model.WorldClock(scale=0.0)))
    yield frozen
    world_model.deactivate()
