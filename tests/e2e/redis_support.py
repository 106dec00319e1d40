"""Shared by the multi-process Redis tests: gateways as real processes on one private Redis (or Cluster),
a fake upstream whose every answer costs exactly COST micro-USD, and an aiohttp client."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from support import ADMIN, base_config

from proxy.testing.fake_provider import Behaviour, FakeProvider
from proxy.testing.gateway_process import GatewayProcess

KEY_SECRET = "digest-secret-for-redis-e2e-tests-0123456789"
COST = 1000  # micro-USD per call: 10 output tokens at $100 per 1M; input is free
OUTPUT_TOKENS = 10
PRICE = {"input": 0.0, "output": 100.0}
# With input free and max_tokens = OUTPUT_TOKENS, the worst case admission reserves is exactly COST too,
# so a budget of N * COST admits exactly N calls, whatever the prompt size.


def metered_config(upstream: str, store: dict[str, Any], models: list[str]) -> dict[str, Any]:
    config = base_config(upstream)
    config["store"] = store
    config["secrets"] = {"key_secret": KEY_SECRET}
    config["pricing"] = {"models": {model: PRICE for model in models}}
    config["keys"] = []
    config["tenants"] = {}
    return config


def script_costly(fake: FakeProvider, model: str, delay: float = 0.0) -> None:
    """Every call to ``model`` answers with usage worth exactly COST."""
    usage = {"prompt_tokens": 12, "completion_tokens": OUTPUT_TOKENS, "total_tokens": 12 + OUTPUT_TOKENS}
    reply = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    fake.script(model, Behaviour.json(200, reply, delay=delay))


def start_all(gateways: list[GatewayProcess]) -> list[GatewayProcess]:
    """Start the processes side by side (each takes a second or two to import and bind)."""
    with ThreadPoolExecutor(len(gateways)) as pool:
        started = list(pool.map(lambda g: g.start(), gateways))
    return started


async def chat(
    session: aiohttp.ClientSession, url: str, key: str, model: str, endpoint: str = "chat/completions"
) -> tuple[int, str | None, float, dict[str, str]]:
    """One call: (status, error code, seconds taken, headers). ``endpoint`` "responses": the same call on
    /v1/responses (served through chat by the fake upstream); "messages": on /v1/messages (the chat body
    is a valid Messages body too; its errors are Anthropic's, whose ``type`` stands for the code)."""
    body: dict[str, Any] = (
        {"model": model, "input": "hi", "max_output_tokens": OUTPUT_TOKENS}
        if endpoint == "responses"
        else {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": OUTPUT_TOKENS}
    )
    started = time.monotonic()
    async with session.post(
        f"{url}/v1/{endpoint}", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        data = await resp.json(content_type=None)
        elapsed = time.monotonic() - started
        error = data["error"] if resp.status != 200 else {}
        code = error.get("code") or error.get("type") if resp.status != 200 else None
        return resp.status, code, elapsed, dict(resp.headers)


async def ledger(session: aiohttp.ClientSession, url: str, **query: str) -> list[dict[str, Any]]:
    """Every record of the query, following cursors."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {**query, "limit": "500", **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{url}/admin/usage/records", params=params, headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        out += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return out
