"""Acceptance 3 (issue 6): clients that go away at random points in 200 streams.

Every stream gets exactly one ledger record with outcome ``client_aborted``: with the drain policy the
provider's usage (the gateway kept reading upstream), with the cancel policy an estimate flagged as such.
No reservation is left open, and the gateway's tasks and sockets come back to where they were.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from support import AUTH, KEY, base_config, state

from proxy.dataplane.spine import scopes
from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import Behaviour, FakeProvider

WORDS = 40
USAGE = {"prompt_tokens": 11, "completion_tokens": WORDS, "total_tokens": 11 + WORDS}


def drip() -> Behaviour:
    chunks = [
        b"data: "
        + orjson.dumps(
            {
                "id": "d",
                "object": "chat.completion.chunk",
                "model": "drip",
                "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}],
            }
        )
        + b"\n\n"
        for i in range(WORDS)
    ]
    chunks.append(b'data: {"id":"d","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    chunks.append(b"data: " + orjson.dumps({"id": "d", "choices": [], "usage": USAGE}) + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=0.005)


def drip_responses() -> Behaviour:
    """The same answer as OpenAI's Responses API streams it (served natively)."""

    def event(kind: str, **fields: Any) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"

    response = {"id": "resp_d", "object": "response", "status": "in_progress", "output": [], "usage": None}
    chunks = [event("response.created", response=response)]
    chunks += [event("response.output_text.delta", item_id="m", delta=f" w{i}") for i in range(WORDS)]
    usage = {"input_tokens": 11, "output_tokens": WORDS, "total_tokens": 11 + WORDS}
    chunks.append(event("response.completed", response={**response, "status": "completed", "usage": usage}))
    return Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=0.005)


BODY = {"model": "drip", "messages": [{"role": "user", "content": "count"}], "stream": True}
# The same request on /v1/responses: "drip" is served through chat (translated), "drip-native" natively.
CALLS = {
    "chat": ("/v1/chat/completions", BODY),
    "responses": ("/v1/responses", {"model": "drip", "input": "count", "stream": True}),
    "responses-native": ("/v1/responses", {"model": "drip-native", "input": "count", "stream": True}),
}


async def one_stream(client: TestClient[Any, Any], cut_at: int | None, endpoint: str = "chat") -> None:
    path, body = CALLS[endpoint]
    resp = await client.post(path, json=body, headers=AUTH)
    assert resp.status == 200
    if cut_at is None:
        await resp.read()
    else:
        got = 0
        while got < cut_at:
            piece = await resp.content.read(cut_at - got)
            if not piece:
                break
            got += len(piece)
        resp.close()  # the client goes away: the connection is closed mid-stream


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle_until(check: Callable[[], Any], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("policy", "streams", "endpoint"),
    [
        ("drain", 200, "chat"),
        ("cancel", 60, "chat"),
        ("drain", 60, "responses"),
        ("cancel", 30, "responses"),
        ("drain", 60, "responses-native"),
        ("cancel", 30, "responses-native"),
    ],
)
async def test_client_disconnects_are_metered_once(
    make_gateway: Callable[..., Any], fake: FakeProvider, policy: str, streams: int, endpoint: str
) -> None:
    cfg = base_config(fake.url, metering={"on_client_disconnect": policy, "drain_timeout": 5.0})
    cfg["providers"]["oai"] = {"plugin": "openai", "base_url": fake.url, "api_key": "sk-oai"}
    cfg["models"]["drip-native"] = {"targets": [{"provider": "oai"}]}
    client = await make_gateway(cfg)
    fake.script("drip", drip())
    fake.script("drip-native", drip_responses())
    gw = state(client)
    rng = random.Random(6)
    concurrency = 40

    async def run(cuts: list[int | None]) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def guarded(cut: int | None) -> None:
            async with sem:
                await one_stream(client, cut, endpoint)

        await asyncio.gather(*(guarded(c) for c in cuts))

    await run([None] * concurrency)  # warm-up: connection pools at their working size
    warm = len((await gw.store.records(RecordQuery(key="test", limit=1000))).data)
    await asyncio.sleep(0.3)

    # Idle pooled connections to the provider are not leaks. The fake provider runs in this process, so
    # each is two sockets here (both ends) and one task (its server's handler for the connection).
    def usage() -> tuple[int, int]:
        idle = gw.upstream.idle_connections()
        return len(asyncio.all_tasks()) - idle, fds() - 2 * idle

    tasks, sockets = usage()

    # the stream is ~3.3 KB; cut somewhere in its first half, while the provider is still sending
    await run([rng.randint(1, 1600) for _ in range(streams)])

    async def all_metered() -> bool:
        page = await gw.store.records(RecordQuery(key="test", limit=1000))
        return len(page.data) >= warm + streams

    await settle_until(all_metered)
    records = (await gw.store.records(RecordQuery(key="test", limit=1000))).data[warm:]
    assert len(records) == streams and len({r.request_id for r in records}) == streams
    assert {r.outcome.value for r in records} == {"client_aborted"}
    assert {r.endpoint for r in records} == {CALLS[endpoint][0].removeprefix("/v1/")}
    if policy == "drain":
        assert all(not r.estimated and r.completion_tokens == WORDS for r in records), "provider usage"
    else:
        assert all(r.estimated for r in records), "no provider usage: an estimate, flagged"
    key = gw.snapshot.keys.lookup(KEY)
    assert key is not None
    for scope in scopes(gw.snapshot, key):
        assert (await gw.store.spend(scope, records[-1].started_at)).reserved_micro_usd == 0

    async def back_to_baseline() -> bool:
        now_tasks, now_sockets = usage()
        return now_tasks <= tasks and now_sockets <= sockets + 2

    await settle_until(back_to_baseline, 5.0)
