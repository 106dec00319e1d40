"""Fixtures of the services suite: gateways started from a config *file* (reload re-reads it), on the
shared fake provider; two local aggregators replaying recorded catalogues, and a gateway routed only by
what they list (sync)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from support import ADMIN_TOKEN, KEY, fixture

from proxy.app import create_app
from proxy.config import load_settings, parse_settings
from proxy.store.base import Store
from proxy.testing.fake_provider import FakeProvider


def file_config(
    upstream: str, *, price: float = 1.0, routes: tuple[str, ...] = ("m1", "gone")
) -> dict[str, Any]:
    return {
        "server": {"admin_token": ADMIN_TOKEN},
        "providers": {"local": {"plugin": "openai_compatible", "base_url": upstream}},
        "models": {name: {"targets": [{"provider": "local", "model": name}]} for name in routes},
        "pricing": {
            "models": {"m1": {"input": price, "output": 2 * price}, "gone": {"input": 1.0, "output": 1.0}}
        },
        "keys": [{"name": "test", "tenant": "acme", "key": KEY}],
    }


def write(path: Path, config: dict[str, Any] | str) -> None:
    # write-then-rename: a reader never sees half a file (what an editor or a config deploy does)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config if isinstance(config, str) else yaml.safe_dump(config), encoding="utf-8")
    tmp.replace(path)


@pytest.fixture
def config_file(tmp_path: Path, fake: FakeProvider) -> Path:
    path = tmp_path / "gateway.yaml"
    write(path, file_config(fake.url))
    return path


@pytest.fixture
def start_gateway(aiohttp_client: Any) -> Callable[..., Any]:
    async def start(path: Path, store: Store | None = None) -> TestClient[Any, Any]:
        app = create_app(load_settings(path), config_path=path, store=store)
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    return start


# -- sync: two aggregators ----------------------------------------------------------------------------


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
