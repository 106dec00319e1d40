"""The provider contract: one set of tests every built-in plugin must pass.

Each plugin has one :class:`Row` in ``ROWS``: a non-streaming answer and a stream (recorded fixtures from
``tests/fixtures`` where the vendor has them, else bodies written to the vendor's documented format) with
the usage each must give, error bodies by status, and where its key check goes. The tests, for every row:

- ``build_request`` sends the call's key (never another) to the provider's base URL;
- the usage read from the JSON answer and from the stream (in reads of every size) is the expected one;
- the stream ends whole (complete, nothing cut), and a stream cut in the middle does not;
- 400/401 map to a client fault with their status, 429/500/503 to a server fault (the next target);
- ``validate_key`` against a local server: True for a good key, False for 401, an error for 5xx, with the
  key under test on the path the row names;
- a stream through the gateway (the fake provider replaying the row's stream) is metered with that usage.

A new plugin is done when it has a row here and the suite is green. A plugin whose settings need more than
``base_url``/``api_key``/``headers`` gives ``build`` (how to make an instance on a base URL with a key); a
plugin whose streams are not SSE gives ``tap`` (what feeds its reader the bytes, in place of
:class:`StreamTap`); a plugin whose paths are not under ``/v1/`` sets ``gateway=False`` until the fake
provider serves them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from aiohttp import web
from support import AUTH, base_config, state

from plugins.bedrock.stream import BedrockDecoder
from proxy.config import parse_settings
from proxy.dataplane.tap import StreamTap
from proxy.plugin import (
    Call,
    Endpoint,
    Fault,
    Provider,
    ProviderSettings,
    Reply,
    StreamReader,
    UpstreamError,
)
from proxy.plugin.registry import builtin_names, load_plugin
from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import Behaviour, FakeProvider, split_events

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
Body = str | bytes  # a fixture's name under tests/fixtures, or the bytes themselves
ServerFactory = Callable[..., Any]
KEY = "sk-contract-key"
AWS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}


def openai_reply(prompt: int, completion: int, cached: int = 0) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
    )


def openai_stream(prompt: int, completion: int, *, usage_chunk: bool = True) -> bytes:
    """A chat stream; ``usage_chunk=False``: the usage rides on the finish chunk (Mistral's way)."""
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + orjson.dumps({**body, **extra}) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), chunk({"content": "."})]
    if usage_chunk:
        events.append(chunk({}, "stop"))
        tail = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
        events.append(b"data: " + orjson.dumps({**tail, "usage": usage}) + b"\n\n")
    else:
        events.append(chunk({}, "stop", usage=usage))
    return b"".join(events) + b"data: [DONE]\n\n"


def envelope(status: int) -> bytes:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
    message = f"an error {status}"
    return orjson.dumps(
        {"error": {"message": message, "type": kinds.get(status, "server_error"), "code": None}}
    )


def top_level_error(status: int) -> bytes:
    """vLLM's and Mistral's shape: the fields at the top, ``object: "error"``."""
    return orjson.dumps(
        {"object": "error", "message": f"an error {status}", "type": "BadRequestError", "code": status}
    )


MISTRAL_422 = orjson.dumps(
    {
        "object": "error",
        "message": {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "stream_options"],
                    "msg": "Extra inputs are not permitted",
                    "input": {"include_usage": True},
                }
            ]
        },
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
)


@dataclass(frozen=True)
class Row:
    plugin: str
    reply: Body
    reply_usage: tuple[int, int, int]  # prompt, completion, cached tokens
    stream: Body
    stream_usage: tuple[int, int, int]
    errors: Mapping[int, Body] = field(default_factory=dict)  # status -> body (others: the OpenAI envelope)
    key_path: str = "/v1/models"  # what validate_key GETs, under the server's root
    base: str = "/v1"  # the base URL's path under the server's root
    model: str = "contract-model"
    build: Callable[[str, str | None], Provider] | None = None
    # How the stream's bytes reach the reader: the SSE tap, or a plugin's own framing (binary events).
    tap: Callable[[StreamReader], StreamTap] = StreamTap
    gateway: bool = True  # False while the fake provider cannot serve the plugin's paths (not /v1/...)


OPENAI_STREAM = "openai/chat-stream-include-usage.sse"
OPENAI_REPLY = "openai/chat-nonstream-usage-details.json"

ROWS = [
    Row(
        "openai",
        OPENAI_REPLY,
        (16, 363, 0),
        OPENAI_STREAM,
        (14, 30, 0),
        {
            400: "openai/error-400-context-length-exceeded.json",
            401: "openai/error-401-invalid-api-key.json",
            429: "openai/error-429-rate-limit.json",
            500: "openai/error-500-server-error.json",
            503: "openai/error-503-overloaded.json",
        },
    ),
    Row("openai_compatible", OPENAI_REPLY, (16, 363, 0), "quirks/crlf-line-endings.sse", (22, 2, 0)),
    Row(
        "aihubmix",
        OPENAI_REPLY,
        (16, 363, 0),
        "openai/chat-stream-tool-calls.sse",
        (67, 5, 0),
        {401: "aihubmix/error-401-gateway.json"},
    ),
    Row(
        "openrouter",
        "openrouter/chat-nonstream-usage-cost.json",
        (21, 3, 0),
        "openrouter/chat-stream-processing-usage-cost.sse",
        (21, 3, 0),
        {
            400: "openrouter/error-400-provider-returned-error.json",
            401: "openrouter/error-401-no-auth.json",
            429: "openrouter/error-429-provider-rate-limited.json",
        },
        key_path="/v1/key",
    ),
    Row(
        "anthropic",
        "anthropic/messages-nonstream.json",
        (12, 29, 0),
        "anthropic/messages-stream-text.sse",
        (18, 5, 0),
        {
            400: "anthropic/error-400-invalid-request.json",
            401: "anthropic/error-401-authentication.json",
            429: "anthropic/error-429-rate-limit.json",
            503: "anthropic/error-529-overloaded.json",
        },
        base="",
        model="claude-haiku-4-5",
    ),
    Row(
        "deepseek",
        "deepseek/chat-nonstream-reasoning.json",
        (18, 345, 0),
        "deepseek/chat-stream-reasoning-content.sse",
        (18, 219, 0),
    ),
    Row("groq", openai_reply(45, 3), (45, 3, 0), "groq/chat-stream-usage-twice.sse", (45, 3, 0)),
    Row(
        "mistral",
        openai_reply(9, 4),
        (9, 4, 0),
        openai_stream(9, 2, usage_chunk=False),
        (9, 2, 0),
        {400: MISTRAL_422, 500: top_level_error(500)},
    ),
    Row("xai", openai_reply(30, 12, cached=6), (30, 12, 6), openai_stream(30, 2), (30, 2, 0)),
    Row("together", openai_reply(11, 5), (11, 5, 0), openai_stream(11, 2), (11, 2, 0)),
    Row("fireworks", openai_reply(12, 6), (12, 6, 0), openai_stream(12, 2), (12, 2, 0)),
    Row("ollama", openai_reply(13, 7), (13, 7, 0), openai_stream(13, 2), (13, 2, 0)),
    Row(
        "vllm",
        openai_reply(14, 8),
        (14, 8, 0),
        openai_stream(14, 2),
        (14, 2, 0),
        {400: top_level_error(400), 401: top_level_error(401), 500: top_level_error(500)},
    ),
    Row("lmstudio", openai_reply(15, 9), (15, 9, 0), openai_stream(15, 2), (15, 2, 0)),
    Row(
        "newapi",
        OPENAI_REPLY,
        (16, 363, 0),
        OPENAI_STREAM,
        (14, 30, 0),
        {
            401: "oneapi/new-api-401-invalid-token.json",
            429: "oneapi/one-api-429-upstream-saturated.json",
            500: "oneapi/one-api-500-do-request-failed.json",
            503: "oneapi/new-api-503-no-available-channel.json",
        },
    ),
    Row(
        "azure",
        "azure/chat-nonstream-content-filter-results.json",
        (16, 11, 0),
        "azure/chat-stream-content-filter-prompt-results.sse",
        (15, 78, 0),
        {400: "azure/error-400-content-filter.json"},
        key_path="/openai/v1/models",
        base="",
        model="gpt-4o-mini",
        gateway=False,  # deployment paths: tests/e2e/test_cloud_providers_sdk.py replays them
    ),
    Row(
        "bedrock",
        "bedrock/converse-nonstream-cache-read.json",
        (1517, 5, 1504),
        "bedrock/converse-stream-text.eventstream",
        (12, 63, 0),
        {400: "bedrock/error-400-validation.json"},
        key_path="/foundation-models",
        base="",
        model="amazon.nova-micro-v1:0",
        build=lambda base, key: load_plugin("bedrock")(
            ProviderSettings("contract-bedrock", base, key, {}, {"region": "us-east-1", **AWS})
        ),
        # binary frames: the plugin's decoder turns them into chat SSE before the tap's parser
        tap=lambda reader: StreamTap(reader, decoder=BedrockDecoder("amazon.nova-micro-v1:0", "id", 0)),
        gateway=False,
    ),
    Row(
        "gemini",
        "gemini/generate-content-cached-content.json",
        (3520, 44, 3512),
        "gemini/stream-generate-content-usage-every-chunk.sse",
        (18, 115, 0),
        {
            401: "gemini/error-400-api-key-invalid.json",  # Gemini's bad key (sent as a 400): a 401
            429: "gemini/error-429-resource-exhausted.json",
        },
        key_path="/v1beta/models",
        base="",
        model="gemini-2.5-flash",
        gateway=False,
    ),
    Row(
        "gemini_openai",
        OPENAI_REPLY,
        (16, 363, 0),
        "gemini/openai-compat-stream-usage-every-chunk.sse",
        (12, 31, 0),
        key_path="/v1/models",
    ),
]
IDS = [row.plugin for row in ROWS]
FAULTS = {400: Fault.CLIENT, 401: Fault.CLIENT, 429: Fault.SERVER, 500: Fault.SERVER, 503: Fault.SERVER}


def body_of(body: Body) -> bytes:
    return (FIXTURES / body).read_bytes() if isinstance(body, str) else body


def provider(row: Row, base_url: str = "http://127.0.0.1:9", api_key: str | None = "sk-shared") -> Provider:
    if row.build is not None:
        return row.build(base_url + row.base, api_key)
    cls = load_plugin(row.plugin)
    return cls(ProviderSettings(name=f"contract-{row.plugin}", base_url=base_url + row.base, api_key=api_key))


def chat_call(row: Row, *, stream: bool = False) -> Call:
    body: dict[str, object] = {"model": "client-name", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    return Call(Endpoint.CHAT, body, row.model, stream, True, KEY)


def usage_tuple(reply: Reply | UpstreamError | None) -> tuple[int, int, int] | None:
    usage = reply.usage if isinstance(reply, Reply) else None
    return None if usage is None else (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


def test_every_built_in_plugin_has_a_row() -> None:
    # a plugin without a row is not done
    assert set(builtin_names()) <= {row.plugin for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_declaration(row: Row) -> None:
    cls = load_plugin(row.plugin)
    assert cls.plugin_name == row.plugin
    assert Endpoint.CHAT in cls.endpoints
    assert cls.default_base_url == "" or cls.default_base_url.startswith(("https://", "http://127.0.0.1"))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_build_request_sends_the_calls_key_to_the_base_url(row: Row) -> None:
    plugin = provider(row, "https://upstream.example", api_key="sk-shared")
    request = plugin.build_request(chat_call(row, stream=True))
    assert request.url.startswith("https://upstream.example")
    values = " ".join(request.headers.values())
    assert (
        KEY in values and "sk-shared" not in values
    )  # the call's key (a tenant's own), never the shared one
    # the model goes in the body, or in the path (Gemini, Bedrock: URL-encoded there)
    in_url = quote(row.model, safe="") in request.url or f"/{row.model}:" in request.url
    assert (row.model.encode() in request.body or in_url) and b"client-name" not in request.body


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_usage_from_json(row: Row) -> None:
    reply = provider(row).read_reply(chat_call(row), body_of(row.reply))
    assert isinstance(reply, Reply) and usage_tuple(reply) == row.reply_usage


def feed(row: Row, data: bytes, size: int | list[int]) -> tuple[StreamTap, bytes]:
    tap = row.tap(provider(row).open_stream(chat_call(row, stream=True)))
    out = bytearray()
    pos = step = 0
    while pos < len(data):
        n = size if isinstance(size, int) else size[step % len(size)]
        out += tap.feed(data[pos : pos + n])
        pos, step = pos + n, step + 1
    return tap, bytes(out)


@pytest.mark.parametrize("size", [1_000_000, 7, [3, 50, 1, 200, 13]], ids=["whole", "7", "mixed"])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_usage_from_a_stream_and_its_end(row: Row, size: int | list[int]) -> None:
    tap, out = feed(row, body_of(row.stream), size)
    cut = tap.close()
    reader = tap.reader
    assert tap.error is None and not cut
    assert reader.complete, "a whole stream must end complete"
    assert reader.usage is not None
    assert (
        reader.usage.prompt_tokens,
        reader.usage.completion_tokens,
        reader.usage.cached_tokens,
    ) == row.stream_usage
    assert out  # something reached the client (the gateway's own end marker is checked end to end)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_stream_cut_in_the_middle_is_not_complete(row: Row) -> None:
    data = body_of(row.stream)
    tap, _ = feed(row, data[: len(data) // 2], 1_000_000)
    tap.close()
    assert not tap.reader.complete


@pytest.mark.parametrize("status", sorted(FAULTS))
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_error_mapping(row: Row, status: int) -> None:
    body = body_of(row.errors[status]) if status in row.errors else envelope(status)
    error = provider(row).map_error(status, "application/json", body)
    assert error.fault is FAULTS[status], error
    if error.fault is Fault.CLIENT:
        assert error.status == status
    assert error.message and "Traceback" not in error.message


def key_server(seen: list[tuple[str, str]]) -> web.Application:
    """Answers any GET by the key it carries (in whatever header): ``good`` 200, ``bad`` 401, else 500."""

    async def answer(request: web.Request) -> web.Response:
        headers = ("Authorization", "x-api-key", "api-key", "x-goog-api-key")
        sent = " ".join(v for h in headers for v in request.headers.getall(h, []))
        sent += " " + request.query.get("key", "")
        seen.append((request.path, sent))
        if "sk-good" in sent:
            return web.json_response({"data": [], "object": "list"})
        status = 401 if "sk-bad" in sent else 500
        return web.json_response(orjson.loads(envelope(status)), status=status)

    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    return app


@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_key_validation_against_a_local_server(row: Row, aiohttp_server: ServerFactory) -> None:
    seen: list[tuple[str, str]] = []
    server = await aiohttp_server(key_server(seen))
    plugin = provider(row, str(server.make_url("")).rstrip("/"), api_key="sk-shared")
    async with aiohttp.ClientSession() as http:
        assert await plugin.validate_key(http, "sk-good") is True
        assert await plugin.validate_key(http, "sk-bad") is False
        with pytest.raises(Exception):  # noqa: B017 - any error: the key's validity is unknown
            await plugin.validate_key(http, "sk-flaky")
    assert seen[0] == (row.key_path, seen[0][1]) and "sk-good" in seen[0][1] and "sk-shared" not in seen[0][1]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_a_stream_through_the_gateway_is_metered(
    row: Row, make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    if not row.gateway:
        pytest.skip(f"the fake provider does not serve {row.plugin}'s paths yet")
    root = fake.url.removesuffix("/v1")
    cfg = copy.deepcopy(base_config(fake.url))
    cfg["providers"]["contract"] = {"plugin": row.plugin, "base_url": root + row.base, "api_key": KEY}
    cfg["models"]["contract"] = {"targets": [{"provider": "contract", "model": row.model}]}
    parse_settings(cfg)  # the row's plugin is a valid provider
    data = body_of(row.stream)
    fake.script(row.model, Behaviour(200, b"", "text/event-stream", {}, split_events(data)))
    client = await make_gateway(cfg)
    body = {"model": "contract", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 200
    text = await resp.read()
    assert text.rstrip().endswith(b"data: [DONE]")
    page = await state(client).store.records(RecordQuery())
    [record] = page.data
    assert record.provider == "contract" and record.outcome == "completed"
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == row.stream_usage
    assert (
        fake.received[-1]
        .headers.get("Authorization", fake.received[-1].headers.get("x-api-key", ""))
        .endswith(KEY)
    )
