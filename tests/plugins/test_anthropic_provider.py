"""The anthropic plugin over HTTP bytes: requests, replies, recorded streams, errors, catalogue, key check."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from plugins.anthropic import Plugin
from plugins.anthropic.errors import AnthropicFailure, RequestRejected
from proxy.plugin import (
    Call,
    Endpoint,
    Fault,
    JSONObject,
    ProviderSettings,
    ProviderType,
    Reply,
    StreamReader,
    UpstreamError,
)
from proxy.upstream.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INDEX = {entry["file"]: entry for entry in orjson.loads((FIXTURES / "index.json").read_bytes())}
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def fixture(name: str) -> bytes:
    data = (FIXTURES / "anthropic" / name).read_bytes()
    # the quirks under test live in exact bytes: make sure nothing reformatted the file
    assert hashlib.sha256(data).hexdigest() == INDEX[f"anthropic/{name}"]["sha256"]
    return data


def plugin(base_url: str = "", api_key: str | None = "sk-ant-shared", **headers: str) -> Plugin:
    return Plugin(ProviderSettings(name="anthropic", base_url=base_url, api_key=api_key, headers=headers))


def chat_call(
    stream: bool = False, include_usage: bool = True, api_key: str | None = "sk-ant-tenant", **body: object
) -> Call:
    body.setdefault("model", "claude")
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return Call(Endpoint.CHAT, dict(body), "claude-haiku-4-5", stream, include_usage, api_key)


# ---------------------------------------------------------------- declaration and requests


def test_declaration() -> None:
    assert Plugin.plugin_name == "anthropic"
    assert Plugin.provider_type is ProviderType.DIRECT
    assert Plugin.endpoints == frozenset({Endpoint.CHAT, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS})


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/v1", "https://api.anthropic.com/v1/messages"),
        ("https://aihubmix.com/", "https://aihubmix.com/v1/messages"),
        ("https://aihubmix.com/v1/", "https://aihubmix.com/v1/messages"),
    ],
)
def test_build_request_url(base_url: str, url: str) -> None:
    assert plugin(base_url).build_request(chat_call()).url == url


def test_build_request_headers_and_body() -> None:
    request = plugin(**{"anthropic-beta": "x"}).build_request(
        chat_call(stream=True, stream_options={"include_usage": True})
    )
    assert request.headers["x-api-key"] == "sk-ant-tenant"  # the call's key, no "Bearer " prefix
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "x"
    assert "Authorization" not in request.headers
    body = orjson.loads(request.body)
    assert body["model"] == "claude-haiku-4-5"
    assert body["stream"] is True
    assert "stream_options" not in body


def test_build_request_falls_back_to_the_shared_key_and_lets_config_pin_the_version() -> None:
    request = plugin(**{"anthropic-version": "2024-01-01"}).build_request(chat_call(api_key=None))
    assert request.headers["x-api-key"] == "sk-ant-shared"
    assert request.headers["anthropic-version"] == "2024-01-01"


def test_build_request_rejects_unsupported_parameters_as_client_error() -> None:
    with pytest.raises(RequestRejected) as caught:
        plugin().build_request(chat_call(n=3))
    assert caught.value.error.envelope() == {
        "error": {
            "message": "'n' = 3 is not supported for Anthropic models",
            "type": "invalid_request_error",
            "param": "n",
            "code": None,
        }
    }
    assert caught.value.error.fault is Fault.CLIENT


# ---------------------------------------------------------------- non-stream replies


def test_read_reply_recorded_message() -> None:
    reply = plugin().read_reply(chat_call(), fixture("messages-nonstream.json"))
    assert isinstance(reply, Reply)
    completion = ChatCompletion.model_validate_json(reply.body)
    assert completion.object == "chat.completion"
    assert (completion.choices[0].message.content or "").endswith("Is there anything I can help you with?")
    assert completion.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (
        12,
        29,
        0,
    )


def test_read_reply_error_body_with_http_200_is_an_error() -> None:
    reply = plugin().read_reply(chat_call(), fixture("error-529-overloaded.json"))
    assert isinstance(reply, UpstreamError)
    assert reply.fault is Fault.SERVER


# ---------------------------------------------------------------- streams


@dataclass
class Replay:
    """What an OpenAI client would assemble from the translated stream."""

    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    text: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: list[str] = field(default_factory=list)
    usage: list[JSONObject] = field(default_factory=list)
    done: bool = False


def replay(call: Call, data: bytes, sizes: int | list[int]) -> tuple[Replay, StreamReader]:
    """Feeds ``data`` to the plugin's reader in reads of ``sizes`` and parses what the client gets."""
    reader = plugin().open_stream(call)
    parser = SSEParser()
    out = bytearray()
    pos, step = 0, 0
    while pos < len(data):
        size = sizes if isinstance(sizes, int) else sizes[step % len(sizes)]
        for event in parser.feed(data[pos : pos + size]):
            translated = reader.on_event(event)
            if translated is not None:
                assert translated != event.raw
                out += translated
        pos, step = pos + size, step + 1
    parser.close()
    result = Replay()
    client = SSEParser()
    events = client.feed(bytes(out))
    assert not client.close(), "the translated stream must end on an event boundary"
    for event in events:
        assert event.data is not None and not result.done, "nothing may follow [DONE]"
        if event.data == b"[DONE]":
            result.done = True
            continue
        payload = orjson.loads(event.data)
        chunk = ChatCompletionChunk.model_validate(payload)
        result.chunks.append(chunk)
        if chunk.usage is not None:
            assert chunk.choices == []
            result.usage.append(payload["usage"])
        for choice in chunk.choices:
            result.text += choice.delta.content or ""
            result.reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            if choice.finish_reason:
                result.finish.append(choice.finish_reason)
            for tc in choice.delta.tool_calls or []:
                slot = result.calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    return result, reader


CHUNKINGS: list[int | list[int]] = [1_000_000, 1, 7, [3, 50, 1, 200, 13]]
STREAMS = [
    # file, text, finish; usage is checked against index.json
    ("messages-stream-text.sse", "Hello!", "stop"),
    ("messages-stream-cache-write.sse", "Hi.", "stop"),
    ("messages-stream-cache-read.sse", "Hi.", "stop"),
    ("messages-stream-delta-input-tokens.sse", "pong", "stop"),
    ("messages-stream-no-trailing-blank-line.sse", "Hello there!", "stop"),
    ("messages-stream-tool-use.sse", "", "tool_calls"),
]


@pytest.mark.parametrize("sizes", CHUNKINGS, ids=["whole", "bytewise", "7", "mixed"])
@pytest.mark.parametrize(("name", "text", "finish"), STREAMS, ids=[s[0] for s in STREAMS])
def test_recorded_streams(name: str, text: str, finish: str, sizes: int | list[int]) -> None:
    result, reader = replay(chat_call(stream=True), fixture(name), sizes)
    expected = INDEX[f"anthropic/{name}"]["expected"]["usage"]
    assert result.chunks[0].choices[0].delta.role == "assistant"
    assert result.text == text
    assert result.finish == [finish]
    reads = expected.get("cache_read_input_tokens", 0)
    writes = expected.get("cache_creation_input_tokens", 0)
    prompt = expected["input_tokens"] + reads + writes
    completion = expected["output_tokens"]
    assert result.usage == [
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reads, "cache_write_tokens": writes},
        }
    ]
    usage = reader.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        prompt,
        completion,
        reads,
        writes,
    )
    assert reader.error is None
    # a spec parser never dispatches the unterminated message_stop of this fixture: no [DONE] then
    ends_cleanly = name != "messages-stream-no-trailing-blank-line.sse"
    assert result.done is ends_cleanly
    assert reader.finished is ends_cleanly


def test_tool_use_stream_arguments_parse_as_json() -> None:
    result, _ = replay(chat_call(stream=True), fixture("messages-stream-tool-use.sse"), 1)
    assert result.calls == {
        0: {"id": "toolu_012rmAruviySvUXSjgCPWVRu", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    }
    assert orjson.loads(result.calls[0]["arguments"]) == {"city": "Paris"}
    first = result.chunks[1].choices[0].delta.tool_calls
    assert first is not None and first[0].function is not None
    assert (first[0].type, first[0].function.arguments) == ("function", "")


def test_cache_fixtures_meter_reads_and_writes() -> None:
    _, write = replay(chat_call(stream=True), fixture("messages-stream-cache-write.sse"), 5)
    _, read = replay(chat_call(stream=True), fixture("messages-stream-cache-read.sse"), 5)
    assert write.usage is not None and read.usage is not None
    assert (write.usage.prompt_tokens, write.usage.cached_tokens, write.usage.cache_write_tokens) == (
        9 + 5752,
        0,
        5752,
    )
    assert (read.usage.prompt_tokens, read.usage.cached_tokens, read.usage.cache_write_tokens) == (
        9 + 5752,
        5752,
        0,
    )


def test_usage_chunk_only_when_the_client_asked() -> None:
    result, reader = replay(
        chat_call(stream=True, include_usage=False), fixture("messages-stream-text.sse"), 1
    )
    assert result.usage == []
    assert result.done and result.finish == ["stop"]
    assert reader.usage is not None  # metered all the same


def test_overloaded_error_mid_stream() -> None:
    result, reader = replay(chat_call(stream=True), fixture("messages-stream-error-overloaded.sse"), 1)
    error = reader.error
    assert isinstance(error, UpstreamError)
    assert (error.fault, error.code, error.message) == (Fault.SERVER, "overloaded_error", "Overloaded")
    assert result.text == "Hello!"
    assert not result.done and not reader.finished
    assert result.finish == []
    usage = reader.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (18, 2)  # message_start's counts: all there is


def test_error_as_first_event_leaves_nothing_sent() -> None:
    # the host can still fall back: no byte of this attempt reached the client
    reader = plugin().open_stream(chat_call(stream=True))
    events = SSEParser().feed(fixture("messages-stream-error-overloaded.sse").split(b"\n\n", 4)[-1])
    assert [reader.on_event(e) for e in events] == [None]
    assert reader.error is not None and reader.error.fault is Fault.SERVER and reader.error.status == 529


def sse(*payloads: JSONObject) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (str(p["type"]).encode(), orjson.dumps(p)) for p in payloads)


START: JSONObject = {
    "type": "message_start",
    "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 5, "output_tokens": 1}},
}
STOP: list[JSONObject] = [
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 40}},
    {"type": "message_stop"},
]


def block(index: int, content: JSONObject, *deltas: JSONObject) -> list[JSONObject]:
    events: list[JSONObject] = [{"type": "content_block_start", "index": index, "content_block": content}]
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    return [*events, {"type": "content_block_stop", "index": index}]


def test_text_then_two_tools_get_openai_indexes_0_and_1() -> None:
    data = sse(
        START,
        *block(0, {"type": "text", "text": ""}, {"type": "text_delta", "text": "Two calls."}),
        *block(
            1,
            {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
            {"type": "input_json_delta", "partial_json": '{"x":'},
            {"type": "input_json_delta", "partial_json": " 1}"},
        ),
        *block(
            2,
            {"type": "tool_use", "id": "t2", "name": "b", "input": {}},
            {"type": "input_json_delta", "partial_json": "{}"},
        ),
        *STOP,
    )
    result, _ = replay(chat_call(stream=True), data, 11)
    assert result.text == "Two calls."
    assert result.calls == {
        0: {"id": "t1", "name": "a", "arguments": '{"x": 1}'},
        1: {"id": "t2", "name": "b", "arguments": "{}"},
    }
    assert result.finish == ["tool_calls"] and result.done


@pytest.mark.parametrize("asked", [True, False])
def test_thinking_stream(asked: bool) -> None:
    data = sse(
        START,
        *block(
            0,
            {"type": "thinking", "thinking": ""},
            {"type": "thinking_delta", "thinking": "Hmm."},
            {"type": "signature_delta", "signature": "sig"},
        ),
        *block(1, {"type": "text", "text": ""}, {"type": "text_delta", "text": "42"}),
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    )
    result, _ = replay(chat_call(stream=True, reasoning_effort="low" if asked else None), data, 4)
    assert result.text == "42"
    assert result.reasoning == ("Hmm." if asked else "")


def test_forced_json_tool_streams_as_content() -> None:
    data = sse(
        START,
        *block(
            0,
            {"type": "tool_use", "id": "t", "name": "json_response", "input": {}},
            {"type": "input_json_delta", "partial_json": '{"a": 1}'},
        ),
        *STOP,
    )
    result, _ = replay(chat_call(stream=True, response_format={"type": "json_object"}), data, 3)
    assert orjson.loads(result.text) == {"a": 1}
    assert result.calls == {} and result.finish == ["stop"]


def test_non_json_stream_event_is_a_server_error() -> None:
    result, reader = replay(chat_call(stream=True), sse(START) + b"data: <html>\n\n", 1)
    assert reader.error is not None and reader.error.fault is Fault.SERVER
    assert not result.done


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "status", "fault", "code"),
    [
        ("error-400-invalid-request.json", 400, Fault.CLIENT, "invalid_request_error"),
        ("error-400-prompt-too-long.json", 400, Fault.CLIENT, "context_length_exceeded"),
        ("error-401-authentication.json", 401, Fault.CLIENT, "authentication_error"),
        ("error-429-rate-limit.json", 429, Fault.SERVER, "rate_limit_error"),
        ("error-529-overloaded.json", 529, Fault.SERVER, "overloaded_error"),
    ],
)
def test_map_error_fixtures(name: str, status: int, fault: Fault, code: str) -> None:
    body = fixture(name)
    error = plugin().map_error(status, "application/json", body)
    assert (error.status, error.fault, error.code) == (status, fault, code)
    assert error.message == orjson.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("status", "kind", "fault"),
    [
        (403, "permission_error", Fault.CLIENT),
        (404, "not_found_error", Fault.CLIENT),
        (413, "request_too_large", Fault.CLIENT),
        (500, "api_error", Fault.SERVER),
    ],
)
def test_map_error_other_statuses(status: int, kind: str, fault: Fault) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": kind, "message": "m"}})
    assert plugin().map_error(status, "application/json", body).fault is fault


def test_map_error_html_from_an_edge() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
    error = plugin().map_error(502, "text/html", page)
    assert error.fault is Fault.SERVER
    assert error.message == "Anthropic answered HTTP 502 with an HTML page"
    assert plugin().map_error(503, "text/plain", b"upstream connect error").fault is Fault.SERVER


# ---------------------------------------------------------------- catalogue and key check (real local server)


MODELS = [
    {
        "type": "model",
        "id": "claude-sonnet-4-5",
        "display_name": "Claude Sonnet 4.5",
        "created_at": "2025-09-29T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-haiku-4-5",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-01T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-3-opus",
        "display_name": "Claude Opus 3",
        "created_at": "2024-02-29T00:00:00Z",
    },
]


def anthropic_app(seen: list[dict[str, str]], status_for: dict[str, int]) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        seen.append({**request.headers, **request.query})
        key = request.headers.get("x-api-key", "")
        if key in status_for:
            body = {"type": "error", "error": {"type": "api_error", "message": "nope"}}
            return web.json_response(body, status=status_for[key])
        # two pages, to see has_more / last_id followed
        after = request.query.get("after_id")
        page = MODELS[:2] if after is None else [m for m in MODELS if m["id"] == "claude-3-opus"]
        return web.json_response(
            {"data": page, "has_more": after is None, "first_id": page[0]["id"], "last_id": page[-1]["id"]}
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    return app


async def test_list_models_follows_pages(aiohttp_server: ServerFactory) -> None:
    seen: list[dict[str, str]] = []
    server = await aiohttp_server(anthropic_app(seen, {}))
    async with aiohttp.ClientSession() as http:
        models = await plugin(str(server.make_url("/v1"))).list_models(http)
    assert [m.id for m in models] == ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-opus"]
    assert all(m.owned_by == "anthropic" for m in models)
    assert [s.get("after_id") for s in seen] == [None, "claude-haiku-4-5"]
    assert seen[0]["x-api-key"] == "sk-ant-shared" and seen[0]["anthropic-version"] == "2023-06-01"


async def test_list_models_failure_raises(aiohttp_server: ServerFactory) -> None:
    server = await aiohttp_server(anthropic_app([], {"sk-ant-shared": 500}))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(AnthropicFailure) as caught:
            await plugin(str(server.make_url(""))).list_models(http)
    assert caught.value.error.fault is Fault.SERVER


async def test_validate_key(aiohttp_server: ServerFactory) -> None:
    seen: list[dict[str, str]] = []
    server = await aiohttp_server(anthropic_app(seen, {"bad": 401, "forbidden": 403, "flaky": 529}))
    provider = plugin(str(server.make_url("")))
    async with aiohttp.ClientSession() as http:
        assert await provider.validate_key(http, "sk-ant-good") is True
        assert await provider.validate_key(http, "bad") is False
        assert await provider.validate_key(http, "forbidden") is False
        with pytest.raises(AnthropicFailure):
            await provider.validate_key(http, "flaky")
    assert seen[0]["x-api-key"] == "sk-ant-good"  # the key under test, not the shared one


# ---------------------------------------------------------------- native: an Anthropic client's own calls

NATIVE_BODY: JSONObject = {
    "model": "claude",
    "max_tokens": 20,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    "top_k": 3,
}


def native_call(endpoint: Endpoint = Endpoint.MESSAGES, stream: bool = False, **headers: str) -> Call:
    body = dict(NATIVE_BODY, stream=stream) if stream else dict(NATIVE_BODY)
    return Call(endpoint, body, "claude-haiku-4-5", stream, False, "sk-ant-tenant", headers=headers)


def test_native_request_is_the_clients_body_with_the_routes_model() -> None:
    call = native_call(**{"anthropic-version": "2026-01-01", "anthropic-beta": "files-api-2025-04-14"})
    request = plugin().build_request(call)
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert orjson.loads(request.body) == {**NATIVE_BODY, "model": "claude-haiku-4-5"}
    assert call.body["model"] == "claude"  # the call's body is not changed: it may go to other targets
    assert request.headers["x-api-key"] == "sk-ant-tenant"
    assert request.headers["anthropic-version"] == "2026-01-01"
    assert request.headers["anthropic-beta"] == "files-api-2025-04-14"
    # A configured header still wins over the client's.
    pinned = plugin(**{"anthropic-beta": "operator-choice"}).build_request(call)
    assert pinned.headers["anthropic-beta"] == "operator-choice"
    counted = plugin().build_request(native_call(Endpoint.COUNT_TOKENS))
    assert counted.url == "https://api.anthropic.com/v1/messages/count_tokens"


def test_native_reply_is_relayed_with_its_usage() -> None:
    data = fixture("messages-nonstream.json")
    reply = plugin().read_reply(native_call(), data)
    assert isinstance(reply, Reply) and reply.body == data
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 29)
    count = plugin().read_reply(native_call(Endpoint.COUNT_TOKENS), fixture("count-tokens.json"))
    assert isinstance(count, Reply) and count.body == fixture("count-tokens.json")
    assert count.usage is not None and count.usage.prompt_tokens == 0  # free


NATIVE_STREAMS = [name for name, _, _ in STREAMS] + ["messages-stream-thinking.sse"]


@pytest.mark.parametrize("sizes", CHUNKINGS, ids=["whole", "bytewise", "7", "mixed"])
@pytest.mark.parametrize("name", NATIVE_STREAMS)
def test_native_streams_relay_every_byte(name: str, sizes: int | list[int]) -> None:
    data = fixture(name)
    reader = plugin().open_stream(native_call(stream=True))
    parser = SSEParser()
    out = bytearray()
    pos, step = 0, 0
    while pos < len(data):
        size = sizes if isinstance(sizes, int) else sizes[step % len(sizes)]
        for event in parser.feed(data[pos : pos + size]):
            out += reader.on_event(event) or b""
        pos, step = pos + size, step + 1
    parser.close()
    complete = data if data.endswith(b"\n\n") else data[: data.rindex(b"\n\n") + 2]
    assert bytes(out) == complete  # an event never ended by a blank line is never dispatched
    expected = INDEX[f"anthropic/{name}"]["expected"]["usage"]
    assert reader.usage is not None and reader.complete and reader.error is None
    assert reader.usage.completion_tokens == expected["output_tokens"]
    assert reader.usage.cached_tokens == expected.get("cache_read_input_tokens", 0)
    assert reader.usage.cache_write_tokens == expected.get("cache_creation_input_tokens", 0)
    assert reader.finished == data.endswith(b"\n\n")


def test_native_stream_error_event_is_the_gateways_to_send() -> None:
    reader = plugin().open_stream(native_call(stream=True))
    parser = SSEParser()
    out = b"".join(
        reader.on_event(e) or b"" for e in parser.feed(fixture("messages-stream-error-overloaded.sse"))
    )
    assert b"event: error" not in out and b"message_start" in out
    assert reader.error is not None and reader.error.fault is Fault.SERVER
    assert reader.usage is not None and reader.usage.prompt_tokens == 18
