"""Overload: past ``server.max_concurrency`` a fast 503 ``overloaded`` with Retry-After; a trickled body
times out (``server.body_timeout``); health checks stay reachable while the data plane is full."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from support import AUTH, base_config

from proxy.testing.fake_provider import Behaviour, FakeProvider, generated

BODY = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_past_the_cap_a_fast_503(make_gateway: Callable[..., Any], fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["server"]["max_concurrency"] = 2
    client = await make_gateway(cfg)
    chunks = generated("/v1/chat/completions", {**BODY, "stream_options": {"include_usage": True}}).chunks
    fake.script("slow", Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=0.2))
    held = [await client.post("/v1/chat/completions", json=BODY, headers=AUTH) for _ in range(2)]
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json=BODY, headers=AUTH)
    took = time.monotonic() - started
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    assert orjson.loads(await resp.read())["error"]["code"] == "overloaded"
    assert took < 0.1, f"{took * 1000:.0f} ms"
    assert (await client.get("/healthz")).status == 200, "health checks are not capped"
    for r in held:
        assert (await r.text()).rstrip().endswith("[DONE]")
    assert (await client.post("/v1/chat/completions", json=BODY, headers=AUTH)).status == 200, "room again"


async def test_a_trickled_body_times_out(make_gateway: Callable[..., Any], fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["server"]["body_timeout"] = 0.3

    async def trickle() -> Any:
        yield b'{"model": "x", '
        await asyncio.sleep(1.0)
        yield b'"messages": [{"role": "user", "content": "hi"}]}'

    client = await make_gateway(cfg)
    resp = await client.post("/v1/chat/completions", data=trickle(), headers=AUTH)
    assert resp.status == 408
    assert orjson.loads(await resp.read())["error"]["code"] == "request_timeout"
    assert fake.count() == 0
