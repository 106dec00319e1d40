"""Shared fixtures: a fake provider and in-process gateways built on it (see ``support`` for helpers).

Two ways to run a gateway in a test:
- in process (``gateway``/``make_gateway``): ``create_app`` served by pytest-aiohttp's test server, the
  fake provider on the same loop; the test can look at the store directly.
- as a real process (``tests/e2e``): ``python -m proxy serve`` with a config file, the fake provider in a
  background thread, so that the official ``openai`` package (sync and async) talks to it over TCP.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import base_config

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.testing.fake_provider import FakeProvider


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture
async def make_gateway(aiohttp_client: Any, fake: FakeProvider) -> AsyncIterator[Callable[..., Any]]:
    """Build an in-process gateway: ``client = await make_gateway(**config_sections)``."""

    async def build(config: dict[str, Any] | None = None, **sections: Any) -> TestClient[Any, Any]:
        cfg = copy.deepcopy(config) if config is not None else base_config(fake.url, **sections)
        app = create_app(parse_settings(cfg))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    yield build


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await make_gateway()
    return client
