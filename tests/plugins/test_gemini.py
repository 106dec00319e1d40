"""The gemini plugin: the request translation, replies with tools and blocked prompts, errors, the
catalogue; and gemini_openai, the OpenAI-compatible endpoint as a declaration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugins.gemini import Plugin
from plugins.gemini.errors import GeminiFailure
from plugins.gemini.request import to_gemini
from plugins.gemini_openai import Plugin as GeminiOpenAI
from proxy.dataplane.tap import StreamTap
from proxy.plugin import Call, CallRejected, Endpoint, Fault, ProviderSettings, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
SIGNATURE = "c2lnbmF0dXJl"


def plugin(base_url: str = "") -> Plugin:
    return Plugin(ProviderSettings("gemini", base_url, "shared-key"))


def chat(stream: bool = False, **body: Any) -> Call:
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return Call(Endpoint.CHAT, {"model": "flash", **body}, "gemini-2.5-flash", stream, True, None)


def test_request_url_and_key_header() -> None:
    request = plugin().build_request(chat(stream=True))
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert request.headers["x-goog-api-key"] == "shared-key" and "key=" not in request.url
    assert plugin("https://proxy.example/v1beta").build_request(chat()).url == (
        "https://proxy.example/v1beta/models/gemini-2.5-flash:generateContent"
    )


def test_conversation_with_tools_images_and_a_thought_signature() -> None:
    body = to_gemini(
        {
            "messages": [
                {"role": "system", "content": "Call tools."},
                {"role": "developer", "content": [{"type": "text", "text": "Be exact."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather where this is?"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                            "extra_content": {"google": {"thought_signature": SIGNATURE}},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": {"type": "object", "additionalProperties": False},
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_tokens": 80,
            "stop": "END",
            "top_p": 0.9,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}},
            },
            "reasoning_effort": "low",
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Call tools."}, {"text": "Be exact."}]}
    user, model, results = body["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    assert model == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": SIGNATURE,
            },
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    # both answers in one user turn, each named after the call it answers
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
        ],
    }
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"] == {"type": "object", "additionalProperties": False}
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert body["generationConfig"] == {
        "maxOutputTokens": 80,
        "topP": 0.9,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 1024},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"logprobs": True},
        {"audio": {"voice": "x"}},
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
            ]
        },
        {"messages": [{"role": "tool", "tool_call_id": "nobody", "content": "x"}]},
        {"reasoning_effort": "extreme"},
    ],
)
def test_what_gemini_cannot_take_is_a_400(body: dict[str, Any]) -> None:
    with pytest.raises(CallRejected) as caught:
        plugin().build_request(chat(**body))
    assert caught.value.error.status == 400 and caught.value.error.fault is Fault.CLIENT


def test_a_function_call_reply_carries_its_signature_back_to_the_client() -> None:
    data = (FIXTURES / "gemini" / "stream-generate-content-function-call.sse").read_bytes()
    tap = StreamTap(plugin().open_stream(chat(stream=True)))
    out = tap.feed(data)
    chunks = [
        orjson.loads(e.removeprefix(b"data: ")) for e in out.split(b"\n\n") if e and e != b"data: [DONE]"
    ]
    call = next(c for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"])
    tool = call["choices"][0]["delta"]["tool_calls"][0]
    assert tool["index"] == 0 and tool["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert tool["extra_content"]["google"]["thought_signature"].startswith("CiQBDDnW")
    # and the signature goes back upstream when the client sends the call again
    again = to_gemini(
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [tool]}]}
    )
    assert again["contents"][1]["parts"][0]["thoughtSignature"].startswith("CiQBDDnW")


def test_a_blocked_prompt_is_a_content_filter_answer() -> None:
    reply = plugin().read_reply(
        chat(), b'{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}'
    )
    assert isinstance(reply, Reply)
    assert orjson.loads(reply.body)["choices"][0]["finish_reason"] == "content_filter"
    assert reply.usage is not None and reply.usage.prompt_tokens == 7


def test_an_error_event_in_the_stream() -> None:
    tap = StreamTap(plugin().open_stream(chat(stream=True)))
    tap.feed(b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\r\n\r\n')
    assert tap.error is not None and tap.error.fault is Fault.SERVER and tap.error.status == 503


def test_resource_exhausted_carries_its_retry_delay() -> None:
    body = (FIXTURES / "gemini" / "error-429-resource-exhausted.json").read_bytes()
    error = plugin().map_error(429, "application/json", body)
    assert (error.status, error.fault, error.retry_after, error.code) == (
        429,
        Fault.SERVER,
        21.0,
        "resource_exhausted",
    )


def test_a_bad_key_is_a_401() -> None:
    body = (FIXTURES / "gemini" / "error-400-api-key-invalid.json").read_bytes()
    error = plugin().map_error(400, "application/json; charset=UTF-8", body)
    assert (error.status, error.fault, error.type, error.code) == (
        401,
        Fault.CLIENT,
        "authentication_error",
        "invalid_api_key",
    )


async def test_list_models_follows_pages(aiohttp_server: ServerFactory) -> None:
    seen: list[str] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers["x-goog-api-key"])
        if request.query.get("pageToken") == "p2":
            return web.json_response(
                {"models": [{"name": "models/text-embedding-004", "inputTokenLimit": 2048}]}
            )
        item = {
            "name": "models/gemini-2.5-flash",
            "inputTokenLimit": 1048576,
            "supportedGenerationMethods": ["generateContent"],
        }
        return web.json_response({"models": [item], "nextPageToken": "p2"})

    app = web.Application()
    app.router.add_get("/v1beta/models", models)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        found = await plugin(str(server.make_url("")).rstrip("/")).list_models(http)
    assert [(m.id, m.context_length) for m in found] == [
        ("gemini-2.5-flash", 1048576),
        ("text-embedding-004", 2048),
    ]
    assert found[0].features == ("generateContent",) and seen == ["shared-key", "shared-key"]


async def test_list_models_failure_raises(aiohttp_server: ServerFactory) -> None:
    async def models(request: web.Request) -> web.Response:
        return web.Response(status=503, text="<html>down</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/v1beta/models", models)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(GeminiFailure):
            await plugin(str(server.make_url("")).rstrip("/")).list_models(http)


def test_the_openai_compatible_endpoint_is_a_declaration() -> None:
    provider = GeminiOpenAI(ProviderSettings("g", "", "k"))
    call = chat(stream=True)
    call.api_key = "k"  # the gateway passes the key to send (the shared one, or a tenant's)
    request = provider.build_request(call)
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    assert request.headers["Authorization"] == "Bearer k"
    # Google's OpenAI-compatible errors may come as a one-element array
    error = provider.map_error(
        429,
        "application/json",
        b'[{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]',
    )
    assert (error.status, error.fault, error.message) == (429, Fault.SERVER, "quota")
    data = (FIXTURES / "gemini" / "openai-compat-stream-usage-every-chunk.sse").read_bytes()
    tap = StreamTap(provider.open_stream(chat(stream=True)))
    tap.feed(data)
    assert tap.usage is not None and (tap.usage.prompt_tokens, tap.usage.completion_tokens) == (12, 31)


def test_after_the_finish_only_a_later_usage_counts() -> None:
    data = (FIXTURES / "gemini" / "stream-generate-content-function-call.sse").read_bytes()
    tap = StreamTap(plugin().open_stream(chat(stream=True)))
    out = tap.feed(data)
    assert out.endswith(b"data: [DONE]\n\n") and tap.reader.complete
    late = (
        b'data: {"candidates": [{"content": {"parts": [{"text": "late"}]}}],'
        b' "usageMetadata": {"promptTokenCount": 55, "candidatesTokenCount": 16}}\r\n\r\n'
    )
    assert tap.feed(late) == b""
    assert tap.feed(b'data: {"error": {"code": 500, "status": "INTERNAL"}}\r\n\r\n') == b""
    assert tap.error is None and tap.usage is not None and tap.usage.completion_tokens == 16
