"""Issue 7 end to end: Claude through the gateway to the official OpenAI SDK (async client, in-process
gateway), every recorded Anthropic answer replayed by the fake provider on ``/v1/messages``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from support import FIXTURES, KEY, base_config, fixture, state

from proxy.store.records import Outcome, RecordQuery
from proxy.testing.fake_provider import Behaviour

INDEX = {e["file"]: e for e in json.loads((FIXTURES / "index.json").read_text())}
CLAUDE_PRICE = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def claude(make_gateway: Any, fake: Any) -> AsyncIterator[Any]:
    config = base_config(fake.url)
    root = fake.url.removesuffix("/v1")
    config["providers"]["anthropic"] = {"plugin": "anthropic", "base_url": root, "api_key": "sk-ant-test"}
    config["providers"]["aihubmix-claude"] = {
        "plugin": "anthropic",
        "base_url": root,
        "api_key": "sk-ahm-test",
    }
    config["models"]["claude"] = {"targets": [{"provider": "anthropic", "model": "claude-x"}]}
    config["models"]["claude-fallback"] = {
        "targets": [
            {"provider": "anthropic", "model": "claude-busy"},
            {"provider": "aihubmix-claude", "model": "claude-x"},
        ]
    }
    config["pricing"]["models"] = {"claude-x": CLAUDE_PRICE, "claude-busy": CLAUDE_PRICE}
    client = await make_gateway(config)
    client.sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=KEY, max_retries=0)
    yield client
    await client.sdk.close()


async def last_record(client: Any) -> Any:
    page = await state(client).store.records(RecordQuery())
    return page.data[-1]


STREAMS = [
    "anthropic/messages-stream-text.sse",
    "anthropic/messages-stream-tool-use.sse",
    "anthropic/messages-stream-cache-write.sse",
    "anthropic/messages-stream-cache-read.sse",
    "anthropic/messages-stream-no-trailing-blank-line.sse",
    "anthropic/messages-stream-delta-input-tokens.sse",
]


@pytest.mark.parametrize("name", STREAMS)
async def test_recorded_claude_streams(claude: Any, fake: Any, name: str) -> None:
    fake.script("claude-x", fixture(name))
    stream = await claude.sdk.chat.completions.create(
        model="claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    calls: dict[int, dict[str, str]] = {}
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    expected = INDEX[name]["expected"]["usage"]
    prompt = (
        expected["input_tokens"]
        + expected.get("cache_creation_input_tokens", 0)
        + expected.get("cache_read_input_tokens", 0)
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, expected["output_tokens"])
    if "tool-use" in name:
        assert finish == "tool_calls" and calls
        for call in calls.values():
            assert call["name"] and isinstance(json.loads(call["arguments"]), dict)
    else:
        assert text and finish == "stop"

    record = await last_record(claude)
    assert record.outcome is Outcome.COMPLETED and not record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, expected["output_tokens"])
    assert record.cached_tokens == expected.get("cache_read_input_tokens", 0)
    assert record.cache_write_tokens == expected.get("cache_creation_input_tokens", 0)
    sent = fake.received[-1]
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "sk-ant-test"


async def test_cache_tokens_priced_separately(claude: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/messages-stream-cache-write.sse"))
    stream = await claude.sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    write = await last_record(claude)
    # 9 uncached input at $3, 5752 cache writes at $3.75, 5 output at $15 (per 1M tokens = micro-USD each)
    assert write.cost_micro_usd == round(9 * 3 + 5752 * 3.75 + 5 * 15)

    fake.script("claude-x", fixture("anthropic/messages-stream-cache-read.sse"))
    stream = await claude.sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    read = await last_record(claude)
    assert read.cost_micro_usd == round(9 * 3 + 5752 * 0.3 + 5 * 15)


async def test_non_stream_reply(claude: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/messages-nonstream.json"))
    completion = await claude.sdk.chat.completions.create(model="claude", messages=MESSAGES)
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 12
    assert completion.usage.completion_tokens == 29


async def test_overloaded_before_first_byte_falls_back(claude: Any, fake: Any) -> None:
    fake.script("claude-busy", fixture("anthropic/error-529-overloaded.json"))
    fake.script("claude-x", fixture("anthropic/messages-stream-text.sse"))
    raw = await claude.sdk.chat.completions.with_raw_response.create(
        model="claude-fallback", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-efflux-provider"] == "aihubmix-claude"
    text = ""
    async for chunk in raw.parse():
        text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text
    # An overloaded_error event as the very first event also falls back.
    error_first = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    fake.script("claude-busy", Behaviour(200, b"", "text/event-stream", {}, [error_first]))
    raw = await claude.sdk.chat.completions.with_raw_response.create(
        model="claude-fallback", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-efflux-provider"] == "aihubmix-claude"
    assert raw.headers["x-efflux-attempts"] == "2"


async def test_overloaded_after_first_byte_is_an_sse_error(claude: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/messages-stream-error-overloaded.sse"))
    stream = await claude.sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as err:
        async for chunk in stream:
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert "Overloaded" in str(err.value.message)
    assert text
    record = await last_record(claude)
    assert record.outcome is Outcome.UPSTREAM_ERROR


async def test_unsupported_parameter_is_a_400(claude: Any) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        await claude.sdk.chat.completions.create(model="claude", messages=MESSAGES, logit_bias={"1": 2})
    assert err.value.param == "logit_bias"
    record = await last_record(claude)
    assert record.outcome is Outcome.REJECTED and record.cost_micro_usd == 0
