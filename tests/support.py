"""Helpers shared by the tests (importable as ``support``; pytest puts tests/ on the path)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.gateway import GATEWAY, Gateway
from proxy.testing.fake_provider import Behaviour, FakeProvider

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


# -- the budget race with image requests (issue 14 item 7): tests/metering/test_reservations.py (memory),
# tests/e2e/test_redis_limits.py (Redis)

IMAGE_RACERS = 100
BUDGET = 10_000  # micro-USD
BILLED_PROMPT, BILLED_OUTPUT = 1_105, 10  # what the provider reports for each request
VISION_PRICE = {"input": 1.0, "output": 1.0}  # $1 per 1M tokens: one micro-USD per token
BILL = BILLED_PROMPT + BILLED_OUTPUT  # micro-USD per request
PIXEL = "data:image/png;base64," + "iVBORw0KGgo" * 3  # a tiny image: its bytes say nothing of its cost


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "high"}}


def script_vision(fake: FakeProvider, model: str) -> None:
    usage = {"prompt_tokens": BILLED_PROMPT, "completion_tokens": BILLED_OUTPUT,
             "total_tokens": BILLED_PROMPT + BILLED_OUTPUT}  # fmt: skip
    reply = {"id": "v", "object": "chat.completion", "created": int(time.time()), "model": model,
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "a cat"},
                          "finish_reason": "stop"}], "usage": usage}  # fmt: skip
    fake.script(model, Behaviour.json(200, reply))


def vision_body(model: str) -> dict[str, Any]:
    content = [{"type": "text", "text": "What is in this picture?"}, image(PIXEL)]
    return {"model": model, "max_tokens": BILLED_OUTPUT, "messages": [{"role": "user", "content": content}]}
