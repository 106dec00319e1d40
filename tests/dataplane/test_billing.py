"""Issue 14, items 8 to 11: nothing sent is nothing billed, estimates count content, a stream without
its end is not completed, and a request that can never fit a limit is told so (not asked to retry)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from support import AUTH, KEY, base_config, state

from proxy.metering.meter import ESTIMATE_CHARS_PER_TOKEN
from proxy.store.records import Outcome, RecordQuery, UsageRecord
from proxy.testing.fake_provider import Behaviour, FakeProvider

Make = Callable[..., Any]
MESSAGES = [{"role": "user", "content": "hi"}]
CONTENT = "0123456789" * 400  # 4,000 characters: about 1,000 tokens of output


async def only_record(client: TestClient[Any, Any]) -> UsageRecord:
    page = await state(client).store.records(RecordQuery())
    assert len(page.data) == 1, page.data
    return page.data[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- item 8: nothing sent, nothing billed ----------------------------------------------------------


async def test_a_request_no_provider_answered_is_recorded_at_zero_cost(
    make_gateway: Make, fake: FakeProvider
) -> None:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["base_url"] = f"http://127.0.0.1:{closed_port()}"
    client = await make_gateway(cfg)
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=AUTH)
    assert resp.status == 502
    record = await only_record(client)
    assert (record.outcome, record.estimated) == (Outcome.UPSTREAM_ERROR, False)
    assert (record.prompt_tokens, record.completion_tokens, record.cost_micro_usd) == (0, 0, 0)


async def test_an_error_answer_with_no_usage_is_recorded_at_zero_cost(
    make_gateway: Make, fake: FakeProvider
) -> None:
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    fake.script("m", Behaviour.json(503, error))
    client = await make_gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=AUTH)
    assert resp.status == 502
    record = await only_record(client)
    assert (record.cost_micro_usd, record.estimated) == (0, False)


def nested(depth: int) -> bytes:
    return (
        b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + b"[" * depth + b"]" * depth + b"}"
    )


@pytest.mark.parametrize("depth", [300, 1000])
async def test_a_body_too_deep_to_forward_is_refused_before_admission(
    make_gateway: Make, fake: FakeProvider, depth: int
) -> None:
    client = await make_gateway()
    resp = await client.post(
        "/v1/chat/completions", data=nested(depth), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["error"]["type"] == "invalid_request_error" and "deep" in body["error"]["message"]
    assert fake.count() == 0
    assert (await state(client).store.records(RecordQuery())).data == []


async def test_a_body_nested_within_the_limit_still_passes(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway()
    resp = await client.post(
        "/v1/chat/completions", data=nested(200), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("model", ["gpt\r\nX-Injected: 1", "gpt\x00", "gpt\x1b[31m", "g" * 1000])
async def test_a_model_name_with_control_characters_or_absurd_length_is_refused(
    make_gateway: Make, fake: FakeProvider, model: str
) -> None:
    client = await make_gateway()
    resp = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES}, headers=AUTH
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["param"] == "model"
    assert "x-efflux-upstream-model" not in resp.headers
    assert fake.count() == 0
    assert (await state(client).store.records(RecordQuery())).data == []


# -- item 9: estimates count content ---------------------------------------------------------------


def answer(content: str, arguments: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if arguments:
        message["tool_calls"] = [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
        ]
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


async def test_a_reply_without_usage_is_estimated_from_its_content(
    make_gateway: Make, fake: FakeProvider
) -> None:
    fake.script("m", Behaviour.json(200, answer(CONTENT, arguments='{"city": "Paris"}')))
    client = await make_gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=AUTH)
    assert resp.status == 200
    record = await only_record(client)
    chars = len(CONTENT) + len(orjson.dumps('{"city": "Paris"}')) - 2  # as sent: escapes count
    assert record.estimated
    assert record.completion_tokens == -(-chars // ESTIMATE_CHARS_PER_TOKEN)


def content_stream(pieces: int, size: int, usage: bool = False) -> list[bytes]:
    """``pieces`` chunks of ``size`` characters each, then a finish chunk, then [DONE] (no usage)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {"id": "x", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": "y" * size}) for _ in range(pieces)]
    out.append(chunk({}, "stop"))
    return [*out, b"data: [DONE]\n\n"]


async def test_a_stream_without_usage_is_estimated_from_its_content_not_its_chunks(
    make_gateway: Make, fake: FakeProvider
) -> None:
    fake.script("m", Behaviour(200, b"", "text/event-stream", {}, content_stream(32, 125)))
    client = await make_gateway()
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 200
    await resp.read()
    record = await only_record(client)
    assert record.estimated and record.outcome == Outcome.COMPLETED
    assert record.completion_tokens == 32 * 125 // ESTIMATE_CHARS_PER_TOKEN


async def test_a_drained_disconnect_without_usage_is_estimated_from_the_content(
    make_gateway: Make, fake: FakeProvider
) -> None:
    """The client leaves at once; the gateway drains the provider's 1,000 tokens (4,000 characters in
    32 chunks), whose usage never comes before the drain gives up: 1,000 tokens, not 34 (one per chunk)."""
    chunks = content_stream(32, 125)[:-2]  # no finish, no usage, no [DONE]: the provider then stalls
    fake.script("m", Behaviour(200, b"", "text/event-stream", {}, chunks, stall=3.0))
    client = await make_gateway(metering={"on_client_disconnect": "drain", "drain_timeout": 0.5})
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 200
    await resp.content.read(10)
    resp.close()
    page = await state(client).store.records(RecordQuery())
    while not page.data:  # settled once the drain gives up (bounded by drain_timeout)
        await asyncio.sleep(0.05)
        page = await state(client).store.records(RecordQuery())
    record = page.data[0]
    assert (record.outcome, record.estimated) == (Outcome.CLIENT_ABORTED, True)
    assert record.completion_tokens == 32 * 125 // ESTIMATE_CHARS_PER_TOKEN


# -- item 10: a stream without its end is not completed ---------------------------------------------


async def test_a_stream_cut_after_the_finish_reason_but_before_usage_is_an_error(
    make_gateway: Make, fake: FakeProvider
) -> None:
    chunks = content_stream(3, 10)[:-1]  # finish_reason sent, then no usage and no [DONE]
    chunks.append(b'data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_to')
    fake.script("m", Behaviour(200, b"", "text/event-stream", {}, chunks))
    client = await make_gateway()
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    received = await resp.read()
    assert received.endswith(b"\n\n") and b'"error"' in received.rsplit(b"data: ", 1)[1]
    record = await only_record(client)
    assert (record.outcome, record.estimated) == (Outcome.UPSTREAM_ERROR, True)


# -- item 11: a request that can never fit is not told to retry --------------------------------------


def limited_key(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "test", "tenant": "acme", "key": KEY, **fields}]


async def test_max_tokens_above_the_keys_tpm_is_a_400_naming_the_limit(make_gateway: Make) -> None:
    client = await make_gateway(keys=limited_key(limits={"tpm": 1000}))
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 5000}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 400
    assert "Retry-After" not in resp.headers
    error = (await resp.json())["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "exceeds_limit")
    assert "1000 tokens per minute" in error["message"] and "max_tokens 5000" in error["message"]


async def test_a_budget_refusal_says_the_request_does_not_fit_and_by_how_much(make_gateway: Make) -> None:
    # $1 and $2 per 1M tokens: 1,000 output tokens reserve 2,000 micro-USD; the budget is 1,500.
    client = await make_gateway(keys=limited_key(budget={"usd": 0.0015, "period": "total"}))
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 1000}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 429
    error = (await resp.json())["error"]
    assert error["code"] == "budget_exceeded"
    assert "does not fit" in error["message"] and "$0.001500 left" in error["message"]


async def test_a_budget_refusal_says_the_budget_is_spent(make_gateway: Make, fake: FakeProvider) -> None:
    # The provider bills a prompt far above its estimate: 1,000 tokens, 1,002 micro-USD, over the budget.
    fake.script(
        "m", Behaviour.json(200, {**answer("ok"), "usage": {"prompt_tokens": 1000, "completion_tokens": 1}})
    )
    client = await make_gateway(keys=limited_key(budget={"usd": 0.0001, "period": "total"}))
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 1}
    first = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert first.status == 200
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 429
    error = (await resp.json())["error"]
    assert error["code"] == "budget_exceeded" and "is spent" in error["message"]
