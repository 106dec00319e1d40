"""Gateways started from a config *file* (reload re-reads it), on the shared fake provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from support import ADMIN_TOKEN, KEY

from proxy.app import create_app
from proxy.config import load_settings
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
