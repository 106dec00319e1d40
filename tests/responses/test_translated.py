"""/v1/responses on routes served through chat: the recorded chat streams of OpenAI-compatible providers and
the Anthropic plugin's Messages traffic (translated to chat by the plugin, then to the Responses API by the
dialect) come back as the typed event sequence, with the provider's usage in the ledger and in
``response.completed``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from support import AUTH, FIXTURES, base_config, fixture, state

from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import FakeProvider

Make = Callable[..., Any]


def expected(name: str) -> dict[str, Any]:
    index = json.loads((FIXTURES / "index.json").read_text())
    entry: dict[str, Any] = next(e for e in index if e["file"] == name)["expected"]
    return entry


def typed_events(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line.removeprefix("data: ") for line in block.split("\n") if line.startswith("data: ")]
        if data:
            out.append(orjson.loads(data[0]))
    return out


def config(fake: FakeProvider) -> dict[str, Any]:
    cfg = base_config(fake.url)
    cfg["providers"]["claude"] = {"plugin": "anthropic", "base_url": fake.url, "api_key": "sk-ant-test"}
    cfg["models"]["claude-*"] = {"targets": [{"provider": "claude"}]}
    return cfg


async def stream(client: Any, model: str, **fields: Any) -> list[dict[str, Any]]:
    body = {"model": model, "input": "hi", "stream": True, **fields}
    resp = await client.post("/v1/responses", json=body, headers=AUTH)
    assert resp.status == 200
    return typed_events(await resp.text())


async def last_record(client: Any) -> Any:
    page = await state(client).store.records(RecordQuery(key="test", limit=1000))
    return page.data[-1]


CHAT_STREAMS = [
    "openai/chat-stream-include-usage.sse",
    "openai/chat-stream-tool-calls.sse",
    "openai/chat-stream-parallel-tool-calls.sse",
    "openai/chat-stream-finish-length.sse",
    "openai/chat-stream-refusal.sse",
    "deepseek/chat-stream-reasoning-content.sse",
    "deepseek/chat-stream-usage-on-finish-chunk.sse",
    "groq/chat-stream-usage-twice.sse",
    "gemini/openai-compat-stream-usage-every-chunk.sse",
    "gemini/openai-compat-stream-tool-call.sse",
    "openrouter/chat-stream-multiple-processing-comments.sse",
    "quirks/no-done-terminator.sse",
    "quirks/utf8-split-multibyte.sse",
]


@pytest.mark.parametrize("name", CHAT_STREAMS)
async def test_a_chat_stream_becomes_the_responses_events_with_its_usage(
    make_gateway: Make, fake: FakeProvider, name: str
) -> None:
    client = await make_gateway(config(fake))
    fake.script("small", fixture(name))
    events = await stream(client, "small")
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete") and kinds.count(kinds[-1]) == 1
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    usage = expected(name)["usage"]
    final = events[-1]["response"]
    assert final["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert final["usage"]["output_tokens"] == usage["completion_tokens"]
    record = await last_record(client)
    assert record.endpoint == "responses" and record.outcome.value == "completed" and not record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    # every item added is done, and the final Response holds them all
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(i["id"] for i in done) == sorted(i["id"] for i in final["output"])
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    texts = [
        p["text"] for i in final["output"] if i["type"] == "message" for p in i["content"] if "text" in p
    ]
    assert "".join(texts) == deltas
    if "tool" in name:
        calls = [i for i in final["output"] if i["type"] == "function_call"]
        assert calls and all(json.loads(c["arguments"]) is not None for c in calls)
    if "reasoning" in name:  # DeepSeek's reasoning_content: a reasoning item with its summary, first
        thought = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
        assert thought and final["output"][0]["type"] == "reasoning"
        assert final["output"][0]["summary"] == [{"type": "summary_text", "text": thought}]
    if "finish-length" in name:
        assert final["status"] == "incomplete"
        assert final["incomplete_details"] == {"reason": "max_output_tokens"}


ANTHROPIC_STREAMS = [
    "anthropic/messages-stream-text.sse",
    "anthropic/messages-stream-tool-use.sse",
    "anthropic/messages-stream-cache-write.sse",
    "anthropic/messages-stream-cache-read.sse",
    "anthropic/messages-stream-delta-input-tokens.sse",
    "anthropic/messages-stream-no-trailing-blank-line.sse",
    "anthropic/messages-stream-thinking.sse",
]


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
async def test_an_anthropic_stream_becomes_the_responses_events_with_its_usage(
    make_gateway: Make, fake: FakeProvider, name: str
) -> None:
    client = await make_gateway(config(fake))
    fake.script("claude-x", fixture(name))
    events = await stream(client, "claude-x")
    assert fake.received[-1].path == "/v1/messages"
    assert events[-1]["type"] == "response.completed"
    usage = expected(name)["usage"]
    prompt = (
        usage["input_tokens"]
        + usage.get("cache_creation_input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0)
    )
    final = events[-1]["response"]
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (
        prompt,
        usage["output_tokens"],
    )
    record = await last_record(client)
    assert record.endpoint == "responses" and record.provider == "claude" and not record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, usage["output_tokens"])
    assert record.cached_tokens == usage.get("cache_read_input_tokens", 0)
    if "tool-use" in name:
        assert any(i["type"] == "function_call" for i in final["output"])


async def test_an_anthropic_answer_becomes_a_response(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway(config(fake))
    fake.script("claude-x", fixture("anthropic/messages-nonstream.json"))
    resp = await client.post("/v1/responses", json={"model": "claude-x", "input": "hi"}, headers=AUTH)
    response = orjson.loads(await resp.read())
    assert resp.status == 200 and response["object"] == "response" and response["status"] == "completed"
    [message] = response["output"]
    assert message["type"] == "message" and message["content"][0]["text"]
    assert (response["usage"]["input_tokens"], response["usage"]["output_tokens"]) == (12, 29)
    record = await last_record(client)
    assert (record.endpoint, record.prompt_tokens, record.completion_tokens) == ("responses", 12, 29)


async def test_an_anthropic_error_mid_stream_ends_with_error_and_failed(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway(config(fake))
    fake.script("claude-x", fixture("anthropic/messages-stream-error-overloaded.sse"))
    events = await stream(client, "claude-x")
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert "verloaded" in events[-2]["message"]
    record = await last_record(client)
    assert record.endpoint == "responses" and record.outcome.value == "upstream_error"


async def test_claudes_thinking_becomes_a_reasoning_item_when_reasoning_is_asked_for(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway(config(fake))
    fake.script("claude-x", fixture("anthropic/messages-stream-thinking.sse"))
    events = await stream(client, "claude-x", reasoning={"effort": "low"})
    assert "thinking" in fake.received[-1].body
    kinds = [e["type"] for e in events]
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index("response.output_text.delta")
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"][0]["text"]
