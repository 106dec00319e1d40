"""Provider connections are reused through the real spine: a stream's connection goes back to the pool
once the provider ends it (the body's last chunk comes after [DONE]), and a client that goes away with
the cancel policy gets its upstream connection closed, which is what stops the provider generating."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from support import AUTH, base_config, state

from proxy.testing.fake_provider import Behaviour, FakeProvider

CHAT = {"model": "reuse-model", "messages": [{"role": "user", "content": "hi"}]}


def stream(events: int, delay: float = 0.0) -> Behaviour:
    chunks = [
        b"data: "
        + orjson.dumps({"id": "r", "choices": [{"index": 0, "delta": {"content": f"w{i}"}}]})
        + b"\n\n"
        for i in range(events)
    ]
    chunks.append(b'data: {"id":"r","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    usage = {"prompt_tokens": 3, "completion_tokens": events, "total_tokens": 3 + events}
    chunks.append(b"data: " + orjson.dumps({"id": "r", "choices": [], "usage": usage}) + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=delay)


async def test_streams_and_answers_share_one_connection(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    client = await make_gateway()
    fake.script("reuse-model", stream(5, delay=0.01))  # the last chunk comes after [DONE]
    for i in range(6):
        streaming = i % 2 == 0
        body = {**CHAT, "stream": True} if streaming else {**CHAT, "model": "json-model"}
        resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
        assert resp.status == 200
        text = await resp.read()
        assert (b"data: [DONE]" in text) == streaming
        for _ in range(100):  # the body's last chunk comes 10 ms after [DONE]: then the connection is idle
            if state(client).upstream.idle_connections():
                break
            await asyncio.sleep(0.02)
    peers = {r.peer for r in fake.received if r.path.endswith("/chat/completions")}
    assert len(peers) == 1, peers
    assert state(client).upstream.idle_connections() == 1


async def test_a_cancelled_stream_closes_its_upstream_connection(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    cfg = base_config(fake.url, metering={"on_client_disconnect": "cancel"})
    client = await make_gateway(cfg)
    fake.script("reuse-model", stream(200, delay=0.005))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert resp.status == 200
    await resp.content.readany()
    resp.close()  # the client goes away mid-stream
    upstream_side = fake._runner.server if fake._runner is not None else None
    assert upstream_side is not None
    for _ in range(25):  # the provider sees its connection close at once, not after a linger
        await asyncio.sleep(0.02)
        if not upstream_side.connections:
            break
    assert not upstream_side.connections
    assert state(client).upstream.idle_connections() == 0
