"""End to end: the official ``openai`` package (sync and async) against a real gateway process, with a
fake provider replaying recorded traffic. Each test scripts its own model names, so they share one
gateway and one provider."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest
from support import ADMIN, FIXTURES, KEY, base_config, fixture

from proxy.testing.fake_provider import Behaviour, ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

LIMITED_KEY = "egw-limited-key-0123456789"
NARROW_KEY = "egw-narrow-key-0123456789"
BROKE_KEY = "egw-broke-key-0123456789"


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    return threaded_fake


@pytest.fixture(scope="module")
def gateway(fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    config = base_config(fake.url)
    config["models"]["e2e-*"] = config["models"].pop("*")  # so that other names are unknown
    config["keys"] += [
        {"name": "limited", "tenant": "acme", "key": LIMITED_KEY, "limits": {"rpm": 2}},
        {"name": "narrow", "tenant": "acme", "key": NARROW_KEY, "models": ["allowed-*"]},
        {"name": "broke", "tenant": "acme", "key": BROKE_KEY, "budget": {"usd": 0.0001, "period": "daily"}},
    ]
    return gateway_process(config)


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


@pytest.fixture
def aclient(gateway: GatewayProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def records(gateway: GatewayProcess, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    req = urllib.request.Request(f"{gateway.url}/admin/usage/records?{qs}", headers=ADMIN)
    with urllib.request.urlopen(req, timeout=5) as resp:
        data: list[dict[str, Any]] = json.load(resp)["data"]
        return data


def expected(name: str) -> dict[str, Any]:
    index = json.loads((FIXTURES / "index.json").read_text())
    entry: dict[str, Any] = next(e for e in index if e["file"] == name)["expected"]
    return entry


MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


def test_chat_non_stream_sync(
    client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script("e2e-chat", fixture("openai/chat-nonstream-usage-details.json"))
    raw = client.chat.completions.with_raw_response.create(model="e2e-chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens == 16
    assert completion.usage.completion_tokens == 363
    request_id = raw.headers["x-efflux-request-id"]
    assert raw.headers["x-efflux-provider"] == "local"
    [record] = records(gateway, request_id=request_id)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (16, 363)
    assert record["outcome"] == "completed" and not record["estimated"]
    assert record["cost_micro_usd"] == 16 * 1 + 363 * 2  # default price: $1 in, $2 out per 1M tokens
    sent = fake.received[-1]
    assert sent.headers.get("Authorization") is None, "the client's key never goes upstream"


async def test_chat_stream_async(aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider) -> None:
    fake.script("e2e-stream", fixture("openai/chat-stream-include-usage.sse"))
    stream = await aclient.chat.completions.create(
        model="e2e-stream", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert len(text) > 20
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (14, 30)


def test_chat_stream_without_usage_request_gets_no_usage_chunk(
    client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script("e2e-stream-nousage", fixture("openai/chat-stream-include-usage.sse"))
    chunks = list(client.chat.completions.create(model="e2e-stream-nousage", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks), "the usage-only chunk is stripped for clients that did not ask"
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}
    [record] = records(gateway, key="test", limit="1000")[-1:]
    assert (record["prompt_tokens"], record["completion_tokens"]) == (14, 30)


@pytest.mark.parametrize(
    "name", ["openai/chat-stream-tool-calls.sse", "openai/chat-stream-parallel-tool-calls.sse"]
)
def test_tool_call_streams(client: openai.OpenAI, fake: ThreadedFakeProvider, name: str) -> None:
    model = "e2e-" + name.rsplit("/", 1)[1]
    fake.script(model, fixture(name))
    calls: dict[int, dict[str, str]] = {}
    for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    assert calls
    for call in calls.values():
        assert call["name"]
        json.loads(call["arguments"])
    if "parallel" in name:
        assert len(calls) >= 2


async def test_n_choices_stream(aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider) -> None:
    fake.script("e2e-n3", fixture("openai/chat-stream-n3-choices.sse"))
    stream = await aclient.chat.completions.create(model="e2e-n3", messages=MESSAGES, stream=True, n=3)
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert sorted(texts) == [0, 1, 2] and all(texts.values())
    assert sorted(finishes) == [0, 1, 2]


def test_completions(client: openai.OpenAI, fake: ThreadedFakeProvider) -> None:
    fake.script("e2e-legacy", fixture("openai/completions-legacy.json"))
    completion = client.completions.create(model="e2e-legacy", prompt="Say this is a test")
    assert completion.choices[0].text
    assert completion.usage is not None and completion.usage.total_tokens == 30
    fake.script("e2e-legacy-stream", fixture("openai/completions-legacy-stream.sse"))
    text = "".join(
        c.choices[0].text
        for c in client.completions.create(model="e2e-legacy-stream", prompt="Say this", stream=True)
        if c.choices
    )
    assert text


async def test_embeddings(aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider) -> None:
    fake.script("e2e-embed", fixture("openai/embeddings.json"))
    result = await aclient.embeddings.create(model="e2e-embed", input="The food was delicious")
    assert result.data[0].embedding[:2] == [0.0057293195, -0.012727811]
    assert result.usage.prompt_tokens == 12


def test_models_list_and_retrieve(gateway: GatewayProcess) -> None:
    narrow = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    models = {m.id: m for m in narrow.models.list()}
    assert "two-step" in models
    extra = models["two-step"].model_extra or {}
    assert extra["provider"] == "local" and extra["provider_type"] == "direct"
    assert extra["pricing"] == {"input": 1.0, "output": 2.0, "cached_input": 1.0}
    assert narrow.models.retrieve("openrouter/openai/gpt-4o").id == "openrouter/openai/gpt-4o"
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=NARROW_KEY, max_retries=0).models.retrieve(
            "two-step"
        )


def test_sdk_error_classes(
    client: openai.OpenAI, gateway: GatewayProcess, fake: ThreadedFakeProvider
) -> None:
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="egw-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="x", messages=MESSAGES)
    assert auth.value.code == "invalid_api_key"

    narrow = openai.OpenAI(base_url=gateway.url + "/v1", api_key=NARROW_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        narrow.chat.completions.create(model="two-step", messages=MESSAGES)
    assert denied.value.code == "model_not_allowed"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nowhere-unrouted", messages=MESSAGES)
    assert missing.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as bad_request:
        client.chat.completions.create(model="e2e-bad", messages=[])
    assert bad_request.value.param == "messages"

    fake.script("e2e-ctx", fixture("openai/error-400-context-length-exceeded.json"))
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="e2e-ctx", messages=MESSAGES)
    assert too_long.value.code == "context_length_exceeded"

    limited = openai.OpenAI(base_url=gateway.url + "/v1", api_key=LIMITED_KEY, max_retries=0)
    limited.chat.completions.create(model="e2e-rl", messages=MESSAGES)
    limited.chat.completions.create(model="e2e-rl", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as limited_err:
        limited.chat.completions.create(model="e2e-rl", messages=MESSAGES)
    assert limited_err.value.code == "rate_limit_exceeded"
    assert int(limited_err.value.response.headers["retry-after"]) >= 1

    broke = openai.OpenAI(base_url=gateway.url + "/v1", api_key=BROKE_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as budget:
        broke.chat.completions.create(model="e2e-budget", messages=MESSAGES, max_tokens=1000)
    assert budget.value.code == "budget_exceeded" and budget.value.type == "insufficient_quota"

    fake.script("first", fixture("openai/error-500-server-error.json"))
    fake.script("second", fixture("openai/error-502-html-from-edge.html"))
    with pytest.raises(openai.APIError) as failed:
        client.chat.completions.create(model="two-step", messages=MESSAGES)
    assert isinstance(failed.value, openai.InternalServerError)
    assert "local/first" in failed.value.message and "backup/second" in failed.value.message


def test_not_found_for_unknown_model(gateway: GatewayProcess, fake: ThreadedFakeProvider) -> None:
    config_less = openai.OpenAI(base_url=gateway.url + "/v1", api_key=NARROW_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        config_less.chat.completions.create(model="not-allowed", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as missing:
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=NARROW_KEY, max_retries=0).models.retrieve(
            "allowed-but-unrouted"
        )
    assert missing.value.code == "model_not_found"


def test_midstream_error_raises_in_the_sdk(client: openai.OpenAI, fake: ThreadedFakeProvider) -> None:
    fake.script("e2e-midstream", fixture("openai/chat-stream-midstream-error.sse"))
    seen = ""
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="e2e-midstream", messages=MESSAGES, stream=True):
            if chunk.choices:
                seen += chunk.choices[0].delta.content or ""
    assert seen == "Hello"


def test_fallback_before_first_byte(
    client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script("first", Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}}))
    fake.script("second", fixture("openai/chat-nonstream-usage-details.json"))
    raw = client.chat.completions.with_raw_response.create(model="two-step", messages=MESSAGES)
    assert raw.headers["x-efflux-provider"] == "backup"
    assert raw.headers["x-efflux-attempts"] == "2"
    [record] = records(gateway, request_id=raw.headers["x-efflux-request-id"])
    assert record["provider"] == "backup" and record["attempts"] == 2
