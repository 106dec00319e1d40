"""Two local aggregators replaying recorded catalogues, and a gateway routed only by what they list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import ADMIN_TOKEN, KEY, fixture

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.testing.fake_provider import FakeProvider


@pytest.fixture
async def ahm() -> AsyncIterator[FakeProvider]:
    fake = await FakeProvider().start()
    fake.gets["/api/v1/models"] = fixture("aihubmix/api-v1-models.json")
    fake.gets["/v1/models"] = fixture("aihubmix/v1-models.json")
    yield fake
    await fake.stop()


@pytest.fixture
async def orr() -> AsyncIterator[FakeProvider]:
    fake = await FakeProvider().start()
    # the fixture's links.next points at /api/v1/models?offset=500: served the same page, which adds
    # nothing, so paging stops there
    fake.gets["/v1/models"] = fake.gets["/api/v1/models"] = fixture("openrouter/models.json")
    yield fake
    await fake.stop()


def sync_config(ahm: FakeProvider, orr: FakeProvider, grace: float = 3600.0, **extra: Any) -> dict[str, Any]:
    sync = {"grace": grace, "timeout": 1.0}  # no `every`: these tests sync on demand only
    return {
        "server": {"admin_token": ADMIN_TOKEN},
        "providers": {
            "aihubmix": {"plugin": "aihubmix", "base_url": ahm.url, "api_key": "sk-ahm", "sync": sync},
            "openrouter": {"plugin": "openrouter", "base_url": orr.url, "api_key": "sk-or", "sync": sync},
        },
        "keys": [{"name": "test", "tenant": "acme", "key": KEY}],
        **extra,
    }


@pytest.fixture
async def make_synced(aiohttp_client: Any) -> Callable[..., Any]:
    async def build(config: dict[str, Any]) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(create_app(parse_settings(config)))
        return client

    return build
