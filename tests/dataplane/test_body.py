"""Reading a request body through a tiny aiohttp app: limits, JSON, the fields the gateway reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.dataplane.body import REDIRECTING_FIELDS, read_body
from proxy.errors import GatewayError
from proxy.plugin import Endpoint

LIMIT = 1024
Client = TestClient[web.Request, web.Application]


async def handle(request: web.Request) -> web.Response:
    endpoint = Endpoint(request.match_info["endpoint"])
    try:
        body = await read_body(request, endpoint, LIMIT)
    except GatewayError as exc:
        return exc.response()
    out = asdict(body)
    out["obj_is_parsed"] = isinstance(body.obj, dict)
    return web.json_response(out, dumps=lambda v: orjson.dumps(v).decode())


@pytest.fixture
async def client(aiohttp_client: Callable[[web.Application], Awaitable[Client]]) -> Client:
    app = web.Application()
    app.router.add_post("/v1/{endpoint:.+}", handle)
    return await aiohttp_client(app)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def post(
    client: Client, body: Any, endpoint: str = "chat/completions", **kwargs: Any
) -> tuple[int, Any]:
    data = orjson.dumps(body) if isinstance(body, dict | list) else body
    async with client.post(f"/v1/{endpoint}", data=data, **kwargs) as resp:
        return resp.status, await resp.json()


def error_of(payload: Any) -> tuple[str, str | None, str | None]:
    err = payload["error"]
    return err["code"], err["param"], err["type"]


async def test_a_good_chat_body(client: Client) -> None:
    status, body = await post(
        client, {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 10, "n": 2}
    )
    assert status == 200
    assert body["model"] == "gpt-4o-mini"
    assert (body["stream"], body["include_usage"], body["max_tokens"], body["n"]) == (True, True, 10, 2)
    assert body["obj"]["messages"] == CHAT["messages"]


async def test_defaults_and_untouched_fields(client: Client) -> None:
    extra = {**CHAT, "temperature": 0.2, "tools": [{"type": "function"}], "x-vendor": {"a": [1, None]}}
    status, body = await post(client, extra)
    assert status == 200
    assert (body["stream"], body["include_usage"], body["max_tokens"], body["n"]) == (False, False, None, 1)
    assert body["obj"] == extra  # everything passes through as parsed
    assert body["size"] == len(orjson.dumps(extra))


async def test_max_completion_tokens_wins_over_max_tokens(client: Client) -> None:
    status, body = await post(client, {**CHAT, "max_tokens": 50, "max_completion_tokens": 20})
    assert status == 200
    assert body["max_tokens"] == 20


async def test_null_optional_fields_take_their_defaults(client: Client) -> None:
    status, body = await post(
        client, {**CHAT, "stream": None, "n": None, "max_tokens": None, "stream_options": None}
    )
    assert status == 200
    assert (body["stream"], body["n"], body["max_tokens"]) == (False, 1, None)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"model": "x",}', b"\xff\xfe", b'{"model": "gpt"'],
    ids=["garbage", "empty", "trailing-comma", "not-utf8", "truncated"],
)
async def test_malformed_json(client: Client, raw: bytes) -> None:
    status, body = await post(client, raw)
    assert status == 400
    assert error_of(body) == ("invalid_request_error", None, "invalid_request_error")
    assert "not valid JSON" in body["error"]["message"]


@pytest.mark.parametrize("raw", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
async def test_the_body_must_be_an_object(client: Client, raw: bytes) -> None:
    status, body = await post(client, raw)
    assert status == 400
    assert body["error"]["message"] == "The request body must be a JSON object."


@pytest.mark.parametrize(
    "payload",
    [{"messages": CHAT["messages"]}, {**CHAT, "model": ""}, {**CHAT, "model": 4}, {**CHAT, "model": None}],
    ids=["missing", "empty", "number", "null"],
)
async def test_model_is_required(client: Client, payload: dict[str, Any]) -> None:
    status, body = await post(client, payload)
    assert status == 400
    assert error_of(body) == ("invalid_request_error", "model", "invalid_request_error")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "yes"),
        ("stream", 1),
        ("max_tokens", "10"),
        ("max_tokens", 10.5),
        ("max_tokens", True),
        ("max_tokens", 0),
        ("max_tokens", -1),
        ("max_completion_tokens", "10"),
        ("max_completion_tokens", 0),
        ("n", 0),
        ("n", 129),
        ("n", "2"),
        ("n", False),
        ("stream_options", "yes"),
        ("stream_options", [True]),
        ("messages", []),
        ("messages", "hi"),
    ],
)
async def test_wrong_types_name_the_field(client: Client, field: str, value: Any) -> None:
    status, body = await post(client, {**CHAT, field: value})
    assert status == 400
    assert error_of(body) == ("invalid_request_error", field, "invalid_request_error")


async def test_a_bad_max_tokens_is_refused_beside_a_good_max_completion_tokens(client: Client) -> None:
    status, body = await post(client, {**CHAT, "max_completion_tokens": 10, "max_tokens": "10"})
    assert status == 400
    assert error_of(body)[1] == "max_tokens"


@pytest.mark.parametrize("field", sorted(REDIRECTING_FIELDS))
async def test_fields_that_would_redirect_traffic_are_refused(client: Client, field: str) -> None:
    status, body = await post(client, {**CHAT, field: "https://evil.example/v1"})
    assert status == 400
    assert error_of(body) == ("invalid_request_error", field, "invalid_request_error")
    assert "routing table" in body["error"]["message"]


def test_api_base_and_base_url_are_among_the_redirecting_fields() -> None:
    assert {"api_base", "base_url"} <= REDIRECTING_FIELDS


async def test_a_body_over_the_limit_is_413(client: Client) -> None:
    big = {**CHAT, "pad": "x" * (LIMIT * 2)}
    status, body = await post(client, big)
    assert status == 413
    assert error_of(body) == ("request_too_large", None, "invalid_request_error")
    assert str(LIMIT) in body["error"]["message"]


async def test_a_body_at_the_limit_is_read(client: Client) -> None:
    raw = orjson.dumps({**CHAT, "pad": ""})
    raw = raw[:-1] + b"," + b'"p2":"' + b"x" * (LIMIT - len(raw) - 8) + b'"}'
    assert len(raw) == LIMIT
    status, _ = await post(client, raw)
    assert status == 200


async def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_whole(client: Client) -> None:
    # No Content-Length: the reader counts while reading and stops once past the limit; the generator below
    # would go on for 64 MiB if it were read to the end.
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"model": "gpt-4o-mini", "pad": "'
        for _ in range(1024):
            sent += 65536
            yield b"x" * 65536

    status, body = await post(client, endless())
    assert status == 413
    assert error_of(body)[0] == "request_too_large"
    assert sent < 1024 * 65536


async def test_a_declared_content_length_over_the_limit_is_refused_before_reading(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    async def spy(request: web.Request) -> web.Response:
        try:
            await read_body(request, Endpoint.CHAT, LIMIT)
        except GatewayError as exc:
            # whatever read_body consumed is gone: what is left shows how much it read
            unread = len(await request.content.read())
            return exc.response(headers={"X-Unread": str(unread)})
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/{endpoint:.+}", spy)
    client = await aiohttp_client(app)
    raw = orjson.dumps({**CHAT, "pad": "x" * (LIMIT * 4)})
    async with client.post("/v1/chat/completions", data=raw) as resp:
        assert resp.status == 413
        assert resp.headers["X-Unread"] == str(len(raw))  # refused on the Content-Length header alone
        body = await resp.json()
    assert body["error"]["message"] == f"Request body is {len(raw)} bytes; the limit is {LIMIT} bytes."


async def test_embeddings_cannot_stream(client: Client) -> None:
    status, body = await post(client, {"model": "e", "input": "hi", "stream": True}, endpoint="embeddings")
    assert status == 400
    assert error_of(body) == ("invalid_request_error", "stream", "invalid_request_error")
    status, _ = await post(client, {"model": "e", "input": "hi", "stream": False}, endpoint="embeddings")
    assert status == 200


@pytest.mark.parametrize(
    ("endpoint", "payload", "param"),
    [
        ("embeddings", {"model": "e"}, "input"),
        ("completions", {"model": "c"}, "prompt"),
        ("chat/completions", {"model": "c"}, "messages"),
    ],
)
async def test_each_endpoint_needs_its_input(client: Client, endpoint: str, payload: Any, param: str) -> None:
    status, body = await post(client, payload, endpoint=endpoint)
    assert status == 400
    assert error_of(body)[1] == param


async def test_completions_and_embeddings_bodies(client: Client) -> None:
    status, body = await post(client, {"model": "c", "prompt": "Say", "stream": True}, endpoint="completions")
    assert (status, body["stream"]) == (200, True)
    status, body = await post(client, {"model": "e", "input": ["a", "b"]}, endpoint="embeddings")
    assert (status, body["model"]) == (200, "e")
