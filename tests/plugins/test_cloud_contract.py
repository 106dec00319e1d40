"""What every provider plugin must do, run for azure, bedrock and gemini: usage from a JSON reply and
from a stream (through the gateway's tap, in small reads), the stream's end, the mapping of 400, 401, 429
and 5xx to status and fault, and the key check against a local server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.dataplane.tap import StreamTap
from proxy.plugin import Call, Endpoint, Fault, Provider, ProviderSettings, Reply
from proxy.plugin.registry import load_plugin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
AWS = {"region": "us-east-1", "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}


def google_error(code: int, status: str, reason: str | None = None) -> bytes:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}] if reason else []
    return orjson.dumps(
        {"error": {"code": code, "message": f"{status} here", "status": status, "details": details}}
    )


def openai_error(code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": "it went wrong", "type": None, "param": None, "code": code}})


@dataclass
class Case:
    plugin: str
    options: dict[str, str]
    json_file: str
    json_usage: tuple[int, int, int, int]  # prompt, completion, cached, reasoning
    stream_file: str
    stream_usage: tuple[int, int, int, int]
    errors: dict[int, bytes]  # the provider's own body for each status of the contract
    models_path: str
    key_of: Callable[[web.Request], str | None]
    rejection: tuple[int, bytes]  # how the provider refuses a bad key

    def make(self, base_url: str = "http://127.0.0.1:9") -> Provider:
        options = dict(self.options)
        key = options.pop("api_key", None)
        return load_plugin(self.plugin)(ProviderSettings(self.plugin, base_url, key, {}, options))


CASES = [
    Case(
        "azure",
        {"api_key": "azure-key", "api_version": "2024-10-21"},
        "azure/chat-nonstream-content-filter-results.json",
        (16, 11, 0, 0),
        "azure/chat-stream-content-filter-prompt-results.sse",
        (15, 78, 0, 64),
        {400: openai_error("content_filter"), 401: openai_error("401"), 429: openai_error("429"), 500: b"{}"},
        "/openai/models",
        lambda r: r.headers.get("api-key"),
        (401, openai_error("invalid_api_key")),
    ),
    Case(
        "bedrock",
        AWS,
        "bedrock/converse-nonstream-cache-read.json",
        (1517, 5, 1504, 0),
        "bedrock/converse-stream-text.eventstream",
        (12, 63, 0, 0),
        {code: b'{"message":"it went wrong"}' for code in (400, 401, 429, 500)},
        "/foundation-models",
        lambda r: r.headers.get("Authorization", "").removeprefix("Bearer ") or None,
        (403, b'{"message":"The security token included in the request is invalid."}'),
    ),
    Case(
        "gemini",
        {"api_key": "gemini-key"},
        "gemini/generate-content-thoughts-tool-use-tokens.json",
        (32 + 2395, 41 + 47, 0, 47),
        "gemini/stream-generate-content-usage-every-chunk.sse",
        (18, 80 + 35, 0, 35),
        {
            400: google_error(400, "INVALID_ARGUMENT"),
            401: google_error(400, "INVALID_ARGUMENT", "API_KEY_INVALID"),
            429: (FIXTURES / "gemini" / "error-429-resource-exhausted.json").read_bytes(),
            500: google_error(500, "INTERNAL"),
        },
        "/v1beta/models",
        lambda r: r.headers.get("x-goog-api-key"),
        (400, (FIXTURES / "gemini" / "error-400-api-key-invalid.json").read_bytes()),
    ),
]
IDS = [c.plugin for c in CASES]


def chat(stream: bool, include_usage: bool = True) -> Call:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    return Call(Endpoint.CHAT, body, "model-x", stream, include_usage, None)


def usage_tuple(usage: Any) -> tuple[int, int, int, int]:
    return (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_usage_from_a_json_reply(case: Case) -> None:
    reply = case.make().read_reply(chat(False), (FIXTURES / case.json_file).read_bytes())
    assert isinstance(reply, Reply) and reply.usage is not None
    assert usage_tuple(reply.usage) == case.json_usage
    body = orjson.loads(reply.body)
    assert body["usage"]["prompt_tokens"] == case.json_usage[0]
    assert body["choices"][0]["message"]["role"] == "assistant"


def stream(case: Case, data: bytes, include_usage: bool = True, size: int = 7) -> tuple[StreamTap, bytes]:
    provider, call = case.make(), chat(True, include_usage)
    tap = StreamTap(provider.open_stream(call), decoder=provider.stream_decoder(call))
    out = b"".join(tap.feed(data[i : i + size]) for i in range(0, len(data), size))
    return tap, out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_usage_from_a_stream_and_its_end(case: Case) -> None:
    data = (FIXTURES / case.stream_file).read_bytes()
    tap, out = stream(case, data)
    cut = tap.close()
    assert tap.error is None and not cut
    assert tap.reader.complete  # whole: EOF here is the end, not a cut
    assert tap.usage is not None and usage_tuple(tap.usage) == case.stream_usage
    events = [e for e in out.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    assert events[-1] == b"data: [DONE]"
    last = orjson.loads(events[-2].removeprefix(b"data: "))
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == case.stream_usage[0]
    # without include_usage the client gets no usage chunk, and the gateway still has the usage
    tap, out = stream(case, data, include_usage=False)
    events = [e for e in out.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert not any(c["choices"] == [] and c.get("usage") for c in chunks) and tap.usage is not None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_stream_cut_in_the_middle_is_not_complete(case: Case) -> None:
    data = (FIXTURES / case.stream_file).read_bytes()
    tap, _ = stream(case, data[: len(data) // 2])
    tap.close()
    assert not tap.reader.complete and tap.error is None


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(
    ("status", "expected", "fault"),
    [(400, 400, Fault.CLIENT), (401, 401, Fault.CLIENT), (429, 429, Fault.SERVER), (500, 500, Fault.SERVER)],
)
def test_error_mapping(case: Case, status: int, expected: int, fault: Fault) -> None:
    wire_status = 400 if case.plugin == "gemini" and status == 401 else status  # Gemini's bad key is a 400
    error = case.make().map_error(wire_status, "application/json", case.errors[status])
    assert (error.status, error.fault) == (expected, fault)
    assert error.envelope()["error"]["message"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("status", [502, 503])
def test_an_html_edge_page_is_a_server_fault(case: Case, status: int) -> None:
    error = case.make().map_error(status, "text/html", b"<html><body>Bad gateway</body></html>")
    assert error.fault is Fault.SERVER


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_validate_key(case: Case, aiohttp_server: ServerFactory) -> None:
    seen: list[str | None] = []

    async def models(request: web.Request) -> web.Response:
        key = case.key_of(request)
        seen.append(key)
        if key == "bad":
            status, body = case.rejection
            return web.Response(status=status, body=body, content_type="application/json")
        if key == "flaky":
            return web.Response(status=500, body=b"{}", content_type="application/json")
        return web.json_response({"models": [], "modelSummaries": [], "data": []})

    app = web.Application()
    app.router.add_get(case.models_path, models)
    server = await aiohttp_server(app)
    provider = case.make(str(server.make_url("")).rstrip("/"))
    async with aiohttp.ClientSession() as http:
        assert await provider.validate_key(http, "good") is True
        assert await provider.validate_key(http, "bad") is False
        with pytest.raises(Exception):  # noqa: B017 - each plugin raises its own failure type
            await provider.validate_key(http, "flaky")
    assert seen == ["good", "bad", "flaky"]  # the key under test, not the shared one
