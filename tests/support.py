"""Helpers shared by the tests (importable as ``support``; pytest puts tests/ on the path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.gateway import GATEWAY, Gateway
from proxy.testing.fake_provider import Behaviour

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "egw-test-key-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def fixture(name: str) -> Behaviour:
    return Behaviour.fixture(FIXTURES, name)


def base_config(upstream_url: str, **sections: Any) -> dict[str, Any]:
    """A gateway config whose providers all point at the fake provider, priced by a default price."""
    config: dict[str, Any] = {
        "server": {"admin_token": ADMIN_TOKEN},
        "providers": {
            "local": {"plugin": "openai_compatible", "base_url": upstream_url},
            "backup": {"plugin": "openai_compatible", "base_url": upstream_url},
            "openrouter": {"plugin": "openrouter", "base_url": upstream_url, "api_key": "sk-or-test"},
            "aihubmix": {
                "plugin": "aihubmix",
                "base_url": upstream_url,
                "api_key": "sk-ahm-test",
                "headers": {"APP-Code": "TESTCODE"},
            },
        },
        "models": {
            "*": {"targets": [{"provider": "local"}]},
            "two-step": {
                "targets": [
                    {"provider": "local", "model": "first"},
                    {"provider": "backup", "model": "second"},
                ]
            },
            "openrouter/*": {"targets": [{"provider": "openrouter"}]},
            "aihubmix/*": {"targets": [{"provider": "aihubmix"}]},
        },
        "pricing": {"default": {"input": 1.0, "output": 2.0}},
        "keys": [{"name": "test", "tenant": "acme", "key": KEY}],
    }
    for name, value in sections.items():
        config[name] = value
    return config


def state(client: TestClient[Any, Any]) -> Gateway:
    return client.app[GATEWAY]
