"""``/v1/messages`` and ``/v1/messages/count_tokens`` end to end, with the official ``anthropic`` SDK (async,
and sync in a thread) against an in-process gateway: natively through the ``anthropic`` plugin (the fake
provider replays every recorded Anthropic answer) and translated through an OpenAI-compatible target."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import orjson
import pytest
from support import FIXTURES, KEY, base_config, fixture, state

from proxy.store.records import Outcome, RecordQuery
from proxy.testing.fake_provider import Behaviour

INDEX = {e["file"]: e for e in json.loads((FIXTURES / "index.json").read_text())}
CLAUDE_PRICE = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
GPT_PRICE = {"input": 1.0, "output": 2.0}
LIMITED_KEY = "egw-limited-key-0123456789"
BROKE_KEY = "egw-broke-key-0123456789ab"
NARROW_KEY = "egw-narrow-key-0123456789a"
HELLO: Any = [{"role": "user", "content": "Hello"}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Get current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def config(fake_url: str) -> dict[str, Any]:
    cfg = base_config(fake_url)
    root = fake_url.removesuffix("/v1")
    cfg["providers"]["anthropic"] = {"plugin": "anthropic", "base_url": root, "api_key": "sk-ant-test"}
    cfg["providers"]["anthropic-b"] = {"plugin": "anthropic", "base_url": root, "api_key": "sk-ant-b"}
    cfg["models"] = {
        "claude": {"targets": [{"provider": "anthropic", "model": "claude-x"}]},
        "claude-fallback": {
            "targets": [
                {"provider": "anthropic", "model": "claude-busy"},
                {"provider": "anthropic-b", "model": "claude-x"},
            ]
        },
        "claude-busy": {"targets": [{"provider": "anthropic", "model": "claude-busy"}]},
        "gpt": {"targets": [{"provider": "local", "model": "gpt-x"}]},
        "mixed": {
            "targets": [
                {"provider": "anthropic", "model": "claude-busy"},
                {"provider": "local", "model": "gpt-x"},
            ]
        },
    }
    cfg["pricing"] = {"models": {"claude-x": CLAUDE_PRICE, "claude-busy": CLAUDE_PRICE, "gpt-x": GPT_PRICE}}
    cfg["keys"] = [
        {"name": "test", "tenant": "acme", "key": KEY},
        {"name": "limited", "tenant": "acme", "key": LIMITED_KEY, "limits": {"rpm": 1}},
        {"name": "broke", "tenant": "acme", "key": BROKE_KEY, "budget": {"usd": 0.000001, "period": "daily"}},
        {"name": "narrow", "tenant": "acme", "key": NARROW_KEY, "models": ["gpt"]},
    ]
    return cfg


@pytest.fixture
async def gw(make_gateway: Any, fake: Any) -> AsyncIterator[Any]:
    client = await make_gateway(config(fake.url))
    base = str(client.make_url("")).rstrip("/")
    client.base = base
    client.sdk = anthropic.AsyncAnthropic(base_url=base, api_key=KEY, max_retries=0)
    client.sync = anthropic.Anthropic(base_url=base, api_key=KEY, max_retries=0)
    yield client
    await client.sdk.close()
    client.sync.close()


async def records(client: Any) -> list[Any]:
    page = await state(client).store.records(RecordQuery())
    return list(page.data)


async def last_record(client: Any) -> Any:
    return (await records(client))[-1]


def prompt_of(usage: dict[str, int]) -> int:
    return (
        usage["input_tokens"]
        + usage.get("cache_creation_input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0)
    )


# -- native: the anthropic plugin ---------------------------------------------------------------------


async def test_native_json_relays_the_bytes_and_meters_the_usage(gw: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/messages-nonstream.json"))
    raw = await gw.sdk.messages.with_raw_response.create(
        model="claude",
        max_tokens=100,
        system="You are concise.",
        messages=HELLO,
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    assert await raw.http_response.aread() == (FIXTURES / "anthropic/messages-nonstream.json").read_bytes()
    message = await raw.parse()
    assert message.content[0].type == "text" and message.content[0].text
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 29)
    sent = fake.received[-1]
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.body["model"] == "claude-x" and sent.body["system"] == "You are concise."
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    # the SDK's own version goes on, not the plugin's default
    assert sent.headers["anthropic-version"] == raw.http_response.request.headers["anthropic-version"]
    record = await last_record(gw)
    assert record.endpoint == "messages" and record.outcome is Outcome.COMPLETED and not record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == (12, 29)
    assert record.cost_micro_usd == 12 * 3 + 29 * 15


NATIVE_STREAMS = [
    "anthropic/messages-stream-text.sse",
    "anthropic/messages-stream-tool-use.sse",
    "anthropic/messages-stream-cache-write.sse",
    "anthropic/messages-stream-cache-read.sse",
    "anthropic/messages-stream-no-trailing-blank-line.sse",
    "anthropic/messages-stream-delta-input-tokens.sse",
    "anthropic/messages-stream-thinking.sse",
]


@pytest.mark.parametrize("name", NATIVE_STREAMS)
async def test_native_streams(gw: Any, fake: Any, name: str) -> None:
    fake.script("claude-x", fixture(name))
    async with gw.sdk.messages.stream(model="claude", max_tokens=100, messages=HELLO) as stream:
        async for _ in stream:
            pass
        message = await stream.get_final_message()
    expected = INDEX[name]["expected"]["usage"]
    assert message.usage.output_tokens == expected["output_tokens"]
    kinds = [block.type for block in message.content]
    if "tool-use" in name:
        assert message.stop_reason == "tool_use" and kinds == ["tool_use"]
        assert message.content[0].input == {"city": "Paris"}
    elif "thinking" in name:
        assert kinds == ["thinking", "text"] and message.content[0].signature  # passed through unchanged
    else:
        assert "text" in kinds
    record = await last_record(gw)
    assert record.endpoint == "messages" and record.outcome is Outcome.COMPLETED and not record.estimated
    assert record.prompt_tokens == prompt_of(expected)
    assert record.completion_tokens == expected["output_tokens"]
    assert record.cached_tokens == expected.get("cache_read_input_tokens", 0)
    assert record.cache_write_tokens == expected.get("cache_creation_input_tokens", 0)
    uncached = expected["input_tokens"]
    cost = (
        uncached * 3
        + expected.get("cache_creation_input_tokens", 0) * 3.75
        + expected.get("cache_read_input_tokens", 0) * 0.3
        + expected["output_tokens"] * 15
    )
    assert record.cost_micro_usd == round(cost)


async def test_native_stream_bytes_are_relayed_unchanged(gw: Any, fake: Any) -> None:
    name = "anthropic/messages-stream-thinking.sse"
    fake.script("claude-x", fixture(name))
    body = {"model": "claude", "max_tokens": 100, "messages": HELLO, "stream": True}
    async with gw.post("/v1/messages", json=body, headers={"x-api-key": KEY}) as resp:
        assert resp.status == 200
        received = await resp.read()
    assert received == (FIXTURES / name).read_bytes()


async def test_native_stream_error_event(gw: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/messages-stream-error-overloaded.sse"))
    text = ""
    with pytest.raises(anthropic.APIStatusError) as err:
        async with gw.sdk.messages.stream(model="claude", max_tokens=100, messages=HELLO) as stream:
            async for text_piece in stream.text_stream:
                text += text_piece
    assert "Overloaded" in str(err.value) and text
    record = await last_record(gw)
    assert record.outcome is Outcome.UPSTREAM_ERROR and not record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == (18, 2)  # message_start's usage


async def test_native_sync_client(gw: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/messages-nonstream.json"))

    def call() -> Any:
        return gw.sync.messages.create(model="claude", max_tokens=100, messages=HELLO)

    message = await asyncio.to_thread(call)
    assert message.usage.output_tokens == 29

    fake.script("claude-x", fixture("anthropic/messages-stream-text.sse"))

    def stream() -> str:
        with gw.sync.messages.stream(model="claude", max_tokens=100, messages=HELLO) as s:
            return "".join(s.text_stream)

    assert await asyncio.to_thread(stream) == "Hello!"


async def test_native_overloaded_falls_back_then_is_a_529(gw: Any, fake: Any) -> None:
    fake.script("claude-busy", fixture("anthropic/error-529-overloaded.json"))
    fake.script("claude-x", fixture("anthropic/messages-stream-text.sse"))
    async with gw.sdk.messages.stream(model="claude-fallback", max_tokens=100, messages=HELLO) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Hello!"
    record = await last_record(gw)
    assert record.provider == "anthropic-b" and record.attempts == 2
    # Alone, the overloaded target is the client's OverloadedError (529), as from Anthropic itself.
    with pytest.raises(anthropic.OverloadedError) as err:
        await gw.sdk.messages.create(model="claude-busy", max_tokens=100, messages=HELLO)
    assert err.value.status_code == 529
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "overloaded_error"


async def test_native_provider_refusals_keep_their_class(gw: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/error-400-invalid-request.json"))
    with pytest.raises(anthropic.BadRequestError) as bad:
        await gw.sdk.messages.create(model="claude", max_tokens=100, messages=HELLO)
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    record = await last_record(gw)
    assert record.outcome is Outcome.REJECTED and record.cost_micro_usd == 0
    fake.script("claude-x", fixture("anthropic/error-400-prompt-too-long.json"))
    with pytest.raises(anthropic.BadRequestError) as long:
        await gw.sdk.messages.create(model="claude", max_tokens=100, messages=HELLO)
    assert "prompt is too long" in long.value.body["error"]["message"]
    fake.script("claude-x", fixture("anthropic/error-401-authentication.json"))
    with pytest.raises(anthropic.AuthenticationError):
        await gw.sdk.messages.create(model="claude", max_tokens=100, messages=HELLO)


async def test_native_count_tokens(gw: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/count-tokens.json"))
    raw = await gw.sdk.messages.with_raw_response.count_tokens(model="claude", messages=HELLO)
    assert (await raw.parse()).input_tokens == 19
    assert "x-efflux-estimated" not in raw.headers
    sent = fake.received[-1]
    assert sent.path == "/v1/messages/count_tokens" and sent.body["model"] == "claude-x"
    record = await last_record(gw)
    assert record.endpoint == "messages/count_tokens" and record.outcome is Outcome.COMPLETED
    assert (record.prompt_tokens, record.completion_tokens, record.cost_micro_usd) == (0, 0, 0)
    assert not record.estimated


# -- translated: an OpenAI-compatible target -----------------------------------------------------------


def chat_reply(message: dict[str, Any], finish: str, prompt: int = 20, completion: int = 7) -> Behaviour:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    choice = {"index": 0, "message": message, "finish_reason": finish}
    reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
             "choices": [choice], "usage": usage}  # fmt: skip
    return Behaviour.json(200, reply)


async def test_translated_text_with_system_prompt(gw: Any, fake: Any) -> None:
    fake.script("gpt-x", chat_reply({"role": "assistant", "content": "Hi there"}, "stop"))
    message = await gw.sdk.messages.create(
        model="gpt",
        max_tokens=50,
        system=[{"type": "text", "text": "Be brief."}],
        messages=HELLO,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.2, "top_k": 5},
    )
    assert message.type == "message" and message.model == "gpt" and message.stop_reason == "end_turn"
    assert [(b.type, b.text) for b in message.content] == [("text", "Hi there")]  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 7)
    sent = fake.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert sent.body["max_tokens"] == 50 and sent.body["stop"] == ["END"] and sent.body["user"] == "u-1"
    assert sent.body["temperature"] == 0.2
    assert "top_k" not in sent.body and "anthropic-version" not in sent.headers
    record = await last_record(gw)
    assert record.endpoint == "messages" and record.provider == "local"
    assert (record.prompt_tokens, record.completion_tokens) == (20, 7)


async def test_translated_stream(gw: Any, fake: Any) -> None:
    async with gw.sdk.messages.stream(model="gpt", max_tokens=50, messages=HELLO) as stream:
        events = [event.type async for event in stream]
        message = await stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake provider."
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "message_delta" in events
    record = await last_record(gw)
    assert record.outcome is Outcome.COMPLETED and not record.estimated
    assert message.usage.output_tokens == record.completion_tokens == 6
    assert message.usage.input_tokens == record.prompt_tokens > 0


async def test_translated_tools_round_trip(gw: Any, fake: Any) -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
    asked = {"role": "assistant", "content": None, "tool_calls": [call]}
    fake.script("gpt-x", chat_reply(asked, "tool_calls"))
    first = await gw.sdk.messages.create(
        model="gpt", max_tokens=50, messages=HELLO, tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = fake.received[-1].body
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]

    fake.script("gpt-x", chat_reply({"role": "assistant", "content": "Sunny in Paris."}, "stop"))
    turns: Any = [
        *HELLO,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"},
            {"type": "text", "text": "And so?"},
        ]},
    ]  # fmt: skip
    second = await gw.sdk.messages.create(model="gpt", max_tokens=50, messages=turns, tools=[WEATHER_TOOL])
    assert second.content[0].type == "text" and second.content[0].text == "Sunny in Paris."
    sent = fake.received[-1].body
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}
    assert sent["messages"][3] == {"role": "user", "content": "And so?"}


async def test_translated_tool_stream(gw: Any, fake: Any) -> None:
    fake.script("gpt-x", fixture("openai/chat-stream-parallel-tool-calls.sse"))
    async with gw.sdk.messages.stream(
        model="gpt", max_tokens=50, messages=HELLO, tools=[WEATHER_TOOL]
    ) as stream:
        async for _ in stream:
            pass
        message = await stream.get_final_message()
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) >= 2 and message.stop_reason == "tool_use"
    for use in uses:
        assert use.name and isinstance(use.input, dict) and use.input
    expected = INDEX["openai/chat-stream-parallel-tool-calls.sse"]["expected"].get("usage")
    record = await last_record(gw)
    if expected:
        assert record.completion_tokens == expected["completion_tokens"] == message.usage.output_tokens


async def test_translated_reasoning_stream_is_thinking(gw: Any, fake: Any) -> None:
    fake.script("gpt-x", fixture("deepseek/chat-stream-reasoning-content.sse"))
    async with gw.sdk.messages.stream(
        model="gpt",
        max_tokens=2000,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        async for _ in stream:
            pass
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking  # type: ignore[union-attr]
    assert fake.received[-1].body["reasoning_effort"] == "low"


async def test_translated_image(gw: Any, fake: Any) -> None:
    fake.script("gpt-x", chat_reply({"role": "assistant", "content": "a dot"}, "stop"))
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is this?"},
    ]
    message = await gw.sdk.messages.create(
        model="gpt", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert message.content[0].text == "a dot"  # type: ignore[union-attr]
    parts = fake.received[-1].body["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert parts[2] == {"type": "text", "text": "What is this?"}


async def test_translated_sync_client(gw: Any, fake: Any) -> None:
    def run() -> tuple[str, str]:
        message = gw.sync.messages.create(model="gpt", max_tokens=50, messages=HELLO)
        with gw.sync.messages.stream(model="gpt", max_tokens=50, messages=HELLO) as s:
            streamed = "".join(s.text_stream)
        return message.content[0].text, streamed

    assert await asyncio.to_thread(run) == ("Hello from the fake provider.",) * 2


async def test_translated_count_tokens_is_an_estimate(gw: Any, fake: Any) -> None:
    received = len(fake.received)
    raw = await gw.sdk.messages.with_raw_response.count_tokens(model="gpt", messages=HELLO)
    assert raw.headers["x-efflux-estimated"] == "true"
    assert (await raw.parse()).input_tokens > 0
    assert len(fake.received) == received  # the gateway counted; nothing was sent
    record = await last_record(gw)
    assert record.endpoint == "messages/count_tokens" and record.cost_micro_usd == 0


async def test_translated_server_tool_is_a_400(gw: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        await gw.sdk.messages.create(
            model="gpt",
            max_tokens=50,
            messages=HELLO,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "tools[0]" in err.value.body["error"]["message"]


async def test_translated_mid_stream_error_is_an_error_event(gw: Any, fake: Any) -> None:
    fake.script("gpt-x", fixture("openai/chat-stream-midstream-error.sse"))
    with pytest.raises(anthropic.APIStatusError) as err:
        async with gw.sdk.messages.stream(model="gpt", max_tokens=50, messages=HELLO) as stream:
            async for _ in stream:
                pass
    assert err.value.body["type"] == "error"
    record = await last_record(gw)
    assert record.outcome is Outcome.UPSTREAM_ERROR


# -- the gateway's own refusals, as the SDK's classes -----------------------------------------------------


async def test_gateway_errors_are_the_sdks_classes(gw: Any) -> None:
    base = gw.base
    bad_key = anthropic.AsyncAnthropic(base_url=base, api_key="egw-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        await bad_key.messages.create(model="claude", max_tokens=10, messages=HELLO)
    assert set(auth.value.body) == {"type", "error"} and auth.value.body["type"] == "error"
    assert auth.value.body["error"]["type"] == "authentication_error"
    # The key as a bearer token (ANTHROPIC_AUTH_TOKEN) is accepted too.
    bearer = anthropic.AsyncAnthropic(base_url=base, auth_token=KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        await bearer.messages.create(model="no-such-model", max_tokens=10, messages=HELLO)
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        await gw.sdk.messages.create(model="claude", max_tokens=10, messages=[])
    assert bad.value.body["error"]["type"] == "invalid_request_error"

    limited = anthropic.AsyncAnthropic(base_url=base, api_key=LIMITED_KEY, max_retries=0)
    await limited.messages.create(model="gpt", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as limit:
        await limited.messages.create(model="gpt", max_tokens=10, messages=HELLO)
    assert limit.value.body["error"]["type"] == "rate_limit_error"
    assert limit.value.response.headers.get("retry-after")
    with pytest.raises(anthropic.RateLimitError):  # count_tokens is rate limited too
        await limited.messages.count_tokens(model="gpt", messages=HELLO)

    narrow = anthropic.AsyncAnthropic(base_url=base, api_key=NARROW_KEY, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        await narrow.messages.create(model="claude", max_tokens=10, messages=HELLO)
    assert denied.value.body["error"]["type"] == "permission_error"
    await narrow.close()

    broke = anthropic.AsyncAnthropic(base_url=base, api_key=BROKE_KEY, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as budget:
        await broke.messages.create(model="gpt", max_tokens=1000, messages=HELLO)
    assert budget.value.body["error"]["type"] == "rate_limit_error"
    for client in (bad_key, bearer, limited, broke):
        await client.close()


async def test_every_target_failing_is_an_internal_server_error(gw: Any, fake: Any) -> None:
    fake.script("gpt-x", fixture("openai/error-500-server-error.json"))
    with pytest.raises(anthropic.InternalServerError) as err:
        await gw.sdk.messages.create(model="gpt", max_tokens=10, messages=HELLO)
    assert err.value.status_code == 502 and err.value.body["error"]["type"] == "api_error"


async def test_a_native_refusal_falls_to_a_translated_target(gw: Any, fake: Any) -> None:
    fake.script("claude-busy", fixture("anthropic/error-529-overloaded.json"))
    message = await gw.sdk.messages.create(model="mixed", max_tokens=10, messages=HELLO)
    assert message.content[0].text == "Hello from the fake provider."  # type: ignore[union-attr]
    assert fake.received[-1].path == "/v1/chat/completions"
    record = await last_record(gw)
    assert record.provider == "local" and record.attempts == 2 and record.endpoint == "messages"
    body = orjson.loads(orjson.dumps(fake.received[-2].body))
    assert body["model"] == "claude-busy"  # the native body went first, as the client sent it


async def test_count_tokens_falls_back_to_the_estimate_when_anthropic_fails(gw: Any, fake: Any) -> None:
    fake.script("claude-busy", fixture("anthropic/error-529-overloaded.json"))
    raw = await gw.sdk.messages.with_raw_response.count_tokens(model="claude-busy", messages=HELLO)
    assert raw.headers["x-efflux-estimated"] == "true" and (await raw.parse()).input_tokens > 0
    assert fake.received[-1].path == "/v1/messages/count_tokens"  # asked first
    fake.script("claude-x", fixture("anthropic/error-400-invalid-request.json"))
    with pytest.raises(anthropic.BadRequestError):  # the provider's refusal is the client's answer
        await gw.sdk.messages.count_tokens(model="claude", messages=HELLO)
    assert {r.cost_micro_usd for r in await records(gw)} == {0}


async def test_every_target_rate_limited_is_a_rate_limit_error(gw: Any, fake: Any) -> None:
    fake.script("claude-x", fixture("anthropic/error-429-rate-limit.json"))
    with pytest.raises(anthropic.RateLimitError) as err:
        await gw.sdk.messages.create(model="claude", max_tokens=10, messages=HELLO)
    assert err.value.body["error"]["type"] == "rate_limit_error"
    assert err.value.response.headers["retry-after"] == "12"  # the provider's own wait
    record = await last_record(gw)
    assert record.cost_micro_usd == 0 and record.attempts == 1


async def test_a_body_past_the_limit_is_request_too_large(make_gateway: Any, fake: Any) -> None:
    cfg = config(fake.url)
    cfg["server"]["max_body_bytes"] = 2048
    client = await make_gateway(cfg)
    sdk = anthropic.AsyncAnthropic(base_url=str(client.make_url("")).rstrip("/"), api_key=KEY, max_retries=0)
    big: Any = [{"role": "user", "content": "x" * 4096}]
    with pytest.raises(anthropic.RequestTooLargeError) as err:
        await sdk.messages.create(model="gpt", max_tokens=10, messages=big)
    assert err.value.body["error"]["type"] == "request_too_large"
    with pytest.raises(anthropic.RequestTooLargeError):
        await sdk.messages.count_tokens(model="gpt", messages=big)
    await sdk.close()


async def test_claude_codes_query_string_is_accepted(gw: Any, fake: Any) -> None:
    """Claude Code posts to /v1/messages?beta=true with its beta headers, the key as a bearer token."""
    fake.script("claude-x", fixture("anthropic/messages-nonstream.json"))
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-beta": "claude-code-20250219",
               "anthropic-version": "2023-06-01"}  # fmt: skip
    payload = {"model": "claude", "max_tokens": 10, "messages": HELLO}
    async with gw.post("/v1/messages?beta=true", json=payload, headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["usage"]["output_tokens"] == 29
    assert fake.received[-1].headers["anthropic-beta"] == "claude-code-20250219"
