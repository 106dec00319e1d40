"""``/v1/messages`` under the chat endpoint's resilience tests: the budget race (memory and Redis stores),
clients that go away mid-stream, and faults before and after the first byte, each natively (the
``anthropic`` plugin) and translated (an OpenAI-compatible target)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from support import KEY, base_config, fixture, state

from proxy.dataplane.spine import scopes
from proxy.store.base import Period, Scope
from proxy.store.records import Outcome, RecordQuery
from proxy.testing.fake_provider import Behaviour, FakeProvider, generated

Make = Callable[..., Any]
AUTH = {"x-api-key": KEY}
COST = 1000  # micro-USD per call: 10 output tokens at $100 per 1M; input is free
OUTPUT_TOKENS = 10
PRICE = {"input": 0.0, "output": 100.0}
RACERS, BUDGET_CALLS = 50, 10
FAST = {"connect": 1.0, "first_byte": 0.5, "idle": 0.5, "total": 5.0}
WORDS = 40
KEY_SECRET = "messages-resilience-key-secret-0123456789abcdef"


def config(fake: FakeProvider, fast: bool = False, **sections: Any) -> dict[str, Any]:
    """``fast``: short timeouts, for the fault tests (a loaded machine may be slower than them: only the
    tests that need them get them)."""
    cfg = base_config(fake.url, **sections)
    root = fake.url.removesuffix("/v1")
    for name in ("claude-a", "claude-b"):
        cfg["providers"][name] = {"plugin": "anthropic", "base_url": root, "api_key": f"sk-{name}"}
    for name in ("claude-a", "claude-b", "local", "backup"):
        if fast:
            cfg["providers"][name]["timeouts"] = dict(FAST)
    cfg["models"] = {
        "native": {"targets": [{"provider": "claude-a", "model": "claude-x"}]},
        "translated": {"targets": [{"provider": "local", "model": "gpt-x"}]},
        "native-two": {"targets": [{"provider": "claude-a", "model": "first"},
                                   {"provider": "claude-b", "model": "second"}]},
        "translated-two": {"targets": [{"provider": "local", "model": "first"},
                                       {"provider": "backup", "model": "second"}]},
        "native-then-chat": {"targets": [{"provider": "claude-a", "model": "first"},
                                         {"provider": "local", "model": "second"}]},
    }  # fmt: skip
    cfg["pricing"] = {"models": {m: PRICE for m in ("claude-x", "gpt-x", "first", "second")}}
    return cfg


def body(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "max_tokens": OUTPUT_TOKENS, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip


def anthropic_message(model: str) -> Behaviour:
    return Behaviour.json(200, {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": OUTPUT_TOKENS},
    })  # fmt: skip


def chat_completion(model: str) -> Behaviour:
    usage = {"prompt_tokens": 12, "completion_tokens": OUTPUT_TOKENS, "total_tokens": 12 + OUTPUT_TOKENS}
    return Behaviour.json(200, {
        "id": "c", "object": "chat.completion", "created": 1, "model": model, "usage": usage,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    })  # fmt: skip


async def post(client: TestClient[Any, Any], payload: dict[str, Any]) -> tuple[int, bytes, Any]:
    async with client.post("/v1/messages", json=payload, headers=AUTH) as resp:
        return resp.status, await resp.read(), resp.headers


# -- the budget race -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize("model", ["native", "translated"])
async def test_budget_race(
    make_gateway: Make, fake: FakeProvider, request: pytest.FixtureRequest, backend: str, model: str
) -> None:
    """50 concurrent calls against a budget of 10: exactly 10 served, 40 refused as Anthropic's
    rate_limit_error, the ledger equal to the provider's bill, nothing left reserved."""
    cfg = config(fake)
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"msg{uuid.uuid4().hex[:8]}"
        cfg["store"] = {"backend": "redis", "url": url, "prefix": prefix, "timeout": "1s"}
        cfg["secrets"] = {"key_secret": KEY_SECRET}
    cfg["keys"] = [{"name": "test", "tenant": "acme", "key": KEY,
                    "budget": {"usd": BUDGET_CALLS * COST / 1e6, "period": "total"}}]  # fmt: skip
    client = await make_gateway(cfg)
    fake.script("claude-x", anthropic_message("claude-x"))
    fake.script("gpt-x", chat_completion("gpt-x"))
    results = await asyncio.gather(*(post(client, body(model)) for _ in range(RACERS)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == BUDGET_CALLS and statuses.count(429) == RACERS - BUDGET_CALLS
    for status, raw, _ in results:
        if status == 429:
            assert orjson.loads(raw)["error"]["type"] == "rate_limit_error"
    store = state(client).store
    scope = Scope("key", "test", "acme", budget_micro_usd=BUDGET_CALLS * COST, period=Period.TOTAL)
    spend = await store.spend(scope, time.time())
    records = (await store.records(RecordQuery(limit=1000))).data
    assert len(records) == BUDGET_CALLS == fake.count("claude-x" if model == "native" else "gpt-x")
    assert {r.endpoint for r in records} == {"messages"}
    assert sum(r.cost_micro_usd for r in records) == BUDGET_CALLS * COST == spend.spent_micro_usd
    assert spend.reserved_micro_usd == 0


# -- clients that go away ----------------------------------------------------------------------------------


def anthropic_drip() -> Behaviour:
    def ev(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    start = {
        "id": "msg_d",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 1},
    }
    chunks = [
        ev("message_start", {"type": "message_start", "message": start}),
        ev(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    chunks += [
        ev(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f" w{i}"}},
        )
        for i in range(WORDS)
    ]
    chunks += [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"output_tokens": WORDS}}),
               ev("message_stop", {"type": "message_stop"})]  # fmt: skip
    return Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=0.005)


def chat_drip() -> Behaviour:
    def data(obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    chunks = [
        data({"id": "d", "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}]})
        for i in range(WORDS)
    ]
    usage = {"prompt_tokens": 11, "completion_tokens": WORDS, "total_tokens": 11 + WORDS}
    chunks += [data({"id": "d", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
               data({"id": "d", "choices": [], "usage": usage}), b"data: [DONE]\n\n"]  # fmt: skip
    return Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=0.005)


@pytest.mark.parametrize("model", ["native", "translated"])
@pytest.mark.parametrize("policy", ["drain", "cancel"])
async def test_client_disconnects_are_metered_once(
    make_gateway: Make, fake: FakeProvider, model: str, policy: str
) -> None:
    streams = 40
    cfg = config(fake, metering={"on_client_disconnect": policy, "drain_timeout": 5.0})
    client = await make_gateway(cfg)
    fake.script("claude-x", anthropic_drip())
    fake.script("gpt-x", chat_drip())
    rng = random.Random(15)

    async def one(cut_at: int) -> None:
        resp = await client.post("/v1/messages", json=body(model, stream=True), headers=AUTH)
        assert resp.status == 200
        got = 0
        while got < cut_at:
            piece = await resp.content.read(cut_at - got)
            if not piece:
                break
            got += len(piece)
        resp.close()  # the client goes away mid-stream

    # the streams are ~4-5 KB; cut somewhere in the first part, while the provider is still sending
    await asyncio.gather(*(one(rng.randint(1, 1500)) for _ in range(streams)))
    gw = state(client)
    deadline = asyncio.get_running_loop().time() + 15
    while len((await gw.store.records(RecordQuery(limit=1000))).data) < streams:
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
    records = (await gw.store.records(RecordQuery(limit=1000))).data
    assert len(records) == streams and len({r.request_id for r in records}) == streams
    assert {r.outcome for r in records} == {Outcome.CLIENT_ABORTED}
    assert {r.endpoint for r in records} == {"messages"}
    if policy == "drain":
        odd = [(r.estimated, r.prompt_tokens, r.completion_tokens, r.status) for r in records
               if r.estimated or r.completion_tokens != WORDS]  # fmt: skip
        assert not odd, f"provider usage expected: {odd}"
    elif model == "native":
        # Anthropic's message_start carries the input tokens: the provider's figures, not an estimate.
        assert all(not r.estimated and r.prompt_tokens == 11 for r in records)
    else:
        assert all(r.estimated for r in records), "no provider usage: an estimate, flagged"
    key = gw.snapshot.keys.lookup(KEY)
    assert key is not None
    for scope in scopes(gw.snapshot, key):
        assert (await gw.store.spend(scope, records[-1].started_at)).reserved_micro_usd == 0


# -- faults before and after the first byte ----------------------------------------------------------------


def chat_stream(model: str) -> list[bytes]:
    payload = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
    chunks = generated("/v1/chat/completions", payload).chunks
    assert chunks is not None
    return chunks


OVERLOADED_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)
BEFORE_FIRST_BYTE: dict[str, Callable[[], Behaviour]] = {
    "refuse": lambda: Behaviour(fault="refuse"),
    "no answer within first_byte": lambda: Behaviour(delay=1.0),
    "529 overloaded": lambda: fixture("anthropic/error-529-overloaded.json"),
    "500": lambda: Behaviour.json(500, {"type": "error", "error": {"type": "api_error", "message": "x"}}),
    "overloaded event first": lambda: Behaviour(200, b"", "text/event-stream", {}, [OVERLOADED_EVENT]),
}


@pytest.mark.parametrize("route", ["native-two", "native-then-chat", "translated-two"])
@pytest.mark.parametrize("fault", list(BEFORE_FIRST_BYTE))
async def test_server_fault_before_the_first_byte_falls_back(
    make_gateway: Make, fake: FakeProvider, fault: str, route: str
) -> None:
    client = await make_gateway(config(fake, fast=True))
    if route == "translated-two" and fault == "overloaded event first":
        fake.script("first", Behaviour(200, b"", "text/event-stream", {},
                                       [b'data: {"error":{"message":"overloaded"}}\n\n']))  # fmt: skip
    else:
        fake.script("first", BEFORE_FIRST_BYTE[fault]())
    fake.script("second", fixture("anthropic/messages-stream-text.sse") if route == "native-two"
                else Behaviour(200, b"", "text/event-stream", {}, chat_stream("second")))  # fmt: skip
    status, raw, headers = await post(client, body(route, stream=True))
    assert status == 200, raw
    assert headers["x-efflux-attempts"] == "2"
    last = [block for block in raw.split(b"\n\n") if block][-1]
    assert orjson.loads(last.split(b"data: ", 1)[1])["type"] == "message_stop"
    assert (fake.count("first"), fake.count("second")) == (1, 1)
    record = (await state(client).store.records(RecordQuery())).data[-1]
    assert record.outcome is Outcome.COMPLETED and record.attempts == 2


@pytest.mark.parametrize("route", ["native-two", "translated-two"])
async def test_fault_after_the_first_byte_ends_with_an_anthropic_error_event(
    make_gateway: Make, fake: FakeProvider, route: str
) -> None:
    client = await make_gateway(config(fake, fast=True))
    if route == "native-two":
        chunks = fixture("anthropic/messages-stream-text.sse").chunks or []
    else:
        chunks = chat_stream("first")
    fake.script("first", Behaviour(200, b"", "text/event-stream", {}, chunks[:3], stall=1.2))
    status, raw, _ = await post(client, body(route, stream=True))
    assert status == 200
    blocks = [b for b in raw.split(b"\n\n") if b]
    assert b"message_start" in blocks[0] and b"message_stop" not in raw
    last = blocks[-1]
    assert last.startswith(b"event: error\ndata: ")
    error = orjson.loads(last.split(b"data: ", 1)[1])
    assert error["type"] == "error" and "idle timeout" in error["error"]["message"]
    assert (fake.count("first"), fake.count("second")) == (1, 0), "never a fallback after the first byte"
    record = (await state(client).store.records(RecordQuery())).data[-1]
    assert record.outcome is Outcome.UPSTREAM_ERROR


async def test_a_client_fault_is_answered_at_once_in_anthropics_envelope(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway(config(fake, fast=True))
    fake.script("first", fixture("anthropic/error-400-invalid-request.json"))
    status, raw, _ = await post(client, body("native-two"))
    assert status == 400
    assert orjson.loads(raw)["error"]["type"] == "invalid_request_error"
    assert (fake.count("first"), fake.count("second")) == (1, 0)
