"""The OpenAI-compatible plugins (openai_compatible, openai, aihubmix, openrouter) over recorded bytes,
and the registry that finds plugins by name.

Errors: every OpenAI-style error fixture through ``map_error`` (or ``read_reply`` for one-api's HTTP 200
error) gives the fault, type and code that ``tests/fixtures/index.json`` expects. Usage: every
non-streaming OpenAI-style body gives the usage the index expects.
"""

from __future__ import annotations

import hashlib
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import orjson
import pytest

from plugins.aihubmix import AiHubMix
from plugins.openai import OpenAI
from plugins.openai_compatible import OpenAICompatible, output_chars, usage_from
from plugins.openrouter import OpenRouter
from proxy.plugin import (
    Call,
    Endpoint,
    Fault,
    Provider,
    ProviderSettings,
    ProviderType,
    Reply,
    UpstreamError,
    Usage,
    registry,
)
from proxy.plugin.registry import PluginNotFound, builtin_names, load_plugin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INDEX: dict[str, dict[str, Any]] = {
    e["file"]: e for e in orjson.loads((FIXTURES / "index.json").read_bytes())
}

PLUGIN_OF_FOLDER: dict[str, type[OpenAICompatible]] = {
    "openai": OpenAI,
    "openrouter": OpenRouter,
    "oneapi": OpenAICompatible,
    "aihubmix": AiHubMix,
    "deepseek": OpenAICompatible,
    "quirks": OpenAICompatible,
}


def fixture_bytes(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == INDEX[name]["sha256"], f"{name} was reformatted"
    return data


def plugin_for(name: str, **settings: Any) -> OpenAICompatible:
    cls = PLUGIN_OF_FOLDER[name.split("/")[0]]
    base = settings.pop("base_url", None) or cls.default_base_url or "http://127.0.0.1:9/v1"
    return cls(ProviderSettings(name=cls.plugin_name, base_url=base, **settings))


def call(body: dict[str, Any], *, model: str = "upstream-model", stream: bool = False, **kw: Any) -> Call:
    return Call(
        endpoint=kw.pop("endpoint", Endpoint.CHAT),
        body=body,
        model=model,
        stream=stream,
        include_usage=kw.pop("include_usage", False),
        api_key=kw.pop("api_key", "sk-upstream"),
    )


# --- errors -----------------------------------------------------------------------------------------------

ERROR_FIXTURES = sorted(
    name
    for name in INDEX
    if name.split("/")[0] in ("openai", "openrouter", "oneapi", "aihubmix")
    and INDEX[name]["kind"] == "body"
    and (INDEX[name]["status"] >= 400 or "error_code" in INDEX[name].get("expected", {}))
)


def test_the_error_fixture_list_is_complete() -> None:
    # a fixture added later must not slip past this suite unseen
    assert len(ERROR_FIXTURES) == 24
    assert "openai/error-502-html-from-edge.html" in ERROR_FIXTURES
    assert "oneapi/one-api-retrieve-model-not-found-http200.json" in ERROR_FIXTURES
    assert "aihubmix/error-401-gateway.json" in ERROR_FIXTURES


def expected_fault(status: int) -> Fault:
    if status in (400, 401, 402, 403, 404):
        return Fault.CLIENT
    assert status == 429 or status >= 500, status
    return Fault.SERVER


def read_error(name: str) -> UpstreamError:
    entry = INDEX[name]
    plugin = plugin_for(name)
    body = fixture_bytes(name)
    if entry["status"] == 200:  # one-api: an error sent with HTTP 200
        result = plugin.read_reply(call({"model": "gpt-9"}), body)
        assert isinstance(result, UpstreamError)
        return result
    return plugin.map_error(entry["status"], entry["headers"]["content-type"], body)


@pytest.mark.parametrize("name", ERROR_FIXTURES)
def test_error_fixtures_map_to_the_right_fault_type_and_code(name: str) -> None:
    entry = INDEX[name]
    error = read_error(name)
    expected = entry.get("expected") or {}  # the HTML page has none: no type, no code
    status = 404 if entry["status"] == 200 else entry["status"]
    assert error.status == status
    assert error.fault is expected_fault(status)
    code = expected.get("error_code")
    assert error.code == (str(code) if code not in (None, "") else None)
    # no type in the body: a fallback the OpenAI SDKs accept, never None
    assert error.type == (expected.get("error_type") or "upstream_error")
    assert error.message
    envelope = error.envelope()["error"]
    assert isinstance(envelope, dict)
    assert set(envelope) == {"message", "type", "param", "code"}


def test_the_upstream_message_is_kept() -> None:
    error = read_error("openai/error-400-context-length-exceeded.json")
    assert error.message.startswith("This model's maximum context length is 128000 tokens.")
    assert error.param == "messages"
    assert read_error("openai/error-400-unsupported-parameter.json").param == "max_tokens"
    assert read_error("oneapi/one-api-retrieve-model-not-found-http200.json").param == "model"
    assert read_error("oneapi/one-api-429-upstream-saturated.json").param is None  # "" is no param


def test_an_html_page_from_an_edge_is_a_server_fault_with_a_plain_message() -> None:
    error = read_error("openai/error-502-html-from-edge.html")
    assert (error.status, error.fault, error.code) == (502, Fault.SERVER, None)
    assert "HTML page" in error.message
    assert "<html" not in error.message


def test_html_is_recognised_without_a_content_type() -> None:
    error = OpenAI(ProviderSettings("openai", OpenAI.default_base_url)).map_error(
        503, "", b"  <!DOCTYPE html><title>oops</title>"
    )
    assert (error.fault, "HTML page" in error.message) == (Fault.SERVER, True)


def test_an_empty_or_foreign_error_body() -> None:
    plugin = plugin_for("oneapi")
    assert plugin.map_error(500, "application/json", b"").fault is Fault.SERVER
    assert plugin.map_error(400, "application/json", b"{broken").fault is Fault.CLIENT
    assert plugin.map_error(404, "text/plain", b"not found").message.endswith("answered HTTP 404")
    string_error = plugin.map_error(400, "application/json", b'{"error": "bad thing"}')
    assert (string_error.message, string_error.fault) == ("bad thing", Fault.CLIENT)


def test_openrouter_surfaces_metadata_raw() -> None:
    error = read_error("openrouter/error-400-provider-returned-error.json")
    # the raw body is JSON: its inner message is what a person needs
    assert error.message == "Provider returned error (via Darkbloom): at most 64 tools are allowed"
    assert error.fault is Fault.CLIENT
    rate_limited = read_error("openrouter/error-429-provider-rate-limited.json")
    assert rate_limited.message.startswith(
        "Provider returned error (via Google AI Studio): google/gemma-4-31b-it:free is temporarily"
    )
    # no raw: the message stays as sent
    credits = read_error("openrouter/error-402-insufficient-credits.json")
    assert credits.message.startswith("This request requires more credits")
    assert "(via" not in credits.message


def test_the_plain_base_does_not_read_openrouter_metadata() -> None:
    body = fixture_bytes("openrouter/error-400-provider-returned-error.json")
    error = plugin_for("oneapi").map_error(400, "application/json", body)
    assert error.message == "Provider returned error"


def test_a_one_api_200_with_a_body_that_is_not_an_error_is_a_reply() -> None:
    plugin = plugin_for("oneapi")
    body = b'{"object": "chat.completion", "choices": [], "error": null}'
    assert isinstance(plugin.read_reply(call({}), body), Reply)
    assert isinstance(plugin.read_reply(call({}), b"<html>"), UpstreamError)
    assert plugin.read_reply(call({}), b"[1]") == UpstreamError(
        502, Fault.SERVER, f"provider {plugin.name!r} answered with unexpected JSON"
    )


# --- build_request ----------------------------------------------------------------------------------------

CLIENT_BODY: dict[str, Any] = {
    "model": "client-alias",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0.3,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "response_format": {"type": "json_object"},
    "user": "u-1",
    "stream": True,
    "stream_options": {"include_usage": False, "include_obfuscation": False},
}


def test_build_request_streams_with_usage_and_keeps_every_other_field() -> None:
    plugin = plugin_for("openai")
    original = orjson.loads(orjson.dumps(CLIENT_BODY))
    request = plugin.build_request(call(original, model="gpt-4o-mini", stream=True, api_key="sk-real"))
    sent = orjson.loads(request.body)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    for field, value in CLIENT_BODY.items():
        if field not in ("model", "stream_options"):
            assert sent[field] == value, field
    assert set(sent) == set(CLIENT_BODY)
    assert original == CLIENT_BODY  # the same call may go to several targets: never changed in place
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-real"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "text/event-stream"


def test_build_request_adds_stream_options_when_absent() -> None:
    request = plugin_for("openrouter").build_request(
        call({"model": "x", "messages": [], "stream": True}, model="openai/gpt-4o", stream=True)
    )
    assert orjson.loads(request.body)["stream_options"] == {"include_usage": True}
    assert request.url == "https://openrouter.ai/api/v1/chat/completions"


def test_build_request_without_streaming_adds_nothing() -> None:
    body = {"model": "x", "input": ["a"], "encoding_format": "float"}
    request = plugin_for("oneapi", base_url="http://127.0.0.1:8000/v1/").build_request(
        call(body, model="text-embedding-3-small", endpoint=Endpoint.EMBEDDINGS)
    )
    assert orjson.loads(request.body) == {**body, "model": "text-embedding-3-small"}
    assert request.url == "http://127.0.0.1:8000/v1/embeddings"  # trailing slash of base_url trimmed
    assert request.headers["Accept"] == "application/json"


def test_build_request_without_a_key_sends_no_auth() -> None:
    request = plugin_for("oneapi").build_request(call({"model": "x"}, api_key=None))
    assert "Authorization" not in request.headers


def test_aihubmix_sends_app_code_when_configured() -> None:
    plugin = plugin_for("aihubmix", api_key="sk-ahm", headers={"APP-Code": "REF123"})
    headers = plugin.build_request(call({"model": "x"}, api_key="sk-ahm")).headers
    assert headers["APP-Code"] == "REF123"
    assert headers["Authorization"] == "Bearer sk-ahm"
    assert plugin.provider_type is ProviderType.AGGREGATOR


def test_aihubmix_drops_an_empty_app_code() -> None:
    # ``APP-Code: ${AIHUBMIX_APP_CODE:-}`` with the variable unset
    plugin = plugin_for("aihubmix", headers={"APP-Code": ""})
    headers = plugin.build_request(call({"model": "x"})).headers
    assert "APP-Code" not in headers
    assert not any(k.lower() == "app-code" for k in headers)


def test_plugin_declarations() -> None:
    assert (OpenAI.plugin_name, OpenAI.provider_type, OpenAI.requires_key) == (
        "openai",
        ProviderType.DIRECT,
        True,
    )
    assert (OpenRouter.plugin_name, OpenRouter.provider_type) == ("openrouter", ProviderType.AGGREGATOR)
    assert (AiHubMix.plugin_name, AiHubMix.default_base_url) == ("aihubmix", "https://aihubmix.com/v1")
    assert (OpenAICompatible.requires_key, OpenAICompatible.default_base_url) == (False, "")


# --- usage ------------------------------------------------------------------------------------------------

USAGE_FIXTURES = sorted(
    name
    for name, entry in INDEX.items()
    if entry["kind"] == "body"
    and entry["status"] == 200
    and name.split("/")[0] in PLUGIN_OF_FOLDER
    and "prompt_tokens" in entry.get("expected", {}).get("usage", {})
)


def test_the_usage_fixture_list_is_complete() -> None:
    assert len(USAGE_FIXTURES) == 6
    assert "openrouter/chat-nonstream-usage-cost.json" in USAGE_FIXTURES
    assert "deepseek/chat-nonstream-reasoning.json" in USAGE_FIXTURES


@pytest.mark.parametrize("name", USAGE_FIXTURES)
def test_usage_from_every_non_stream_fixture(name: str) -> None:
    want = INDEX[name]["expected"]["usage"]
    expected = Usage(
        prompt_tokens=want["prompt_tokens"],
        completion_tokens=want.get("completion_tokens", 0),
        cached_tokens=(want.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        or want.get("prompt_cache_hit_tokens", 0),
        cache_write_tokens=(want.get("prompt_tokens_details") or {}).get("cache_write_tokens", 0),
        reasoning_tokens=(want.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
        provider_cost_usd=want.get("cost"),
    )
    body = fixture_bytes(name)
    assert usage_from(orjson.loads(body)["usage"]) == expected
    reply = plugin_for(name).read_reply(call({"model": "m"}), body)
    assert isinstance(reply, Reply)
    assert reply.usage == expected
    assert reply.body == body  # the client gets the provider's bytes unchanged


def test_openrouter_cost_and_deepseek_reasoning_are_read() -> None:
    cost = usage_from(orjson.loads(fixture_bytes("openrouter/chat-nonstream-usage-cost.json"))["usage"])
    assert cost is not None
    assert cost.provider_cost_usd == pytest.approx(4.95e-06)
    reasoning = usage_from(orjson.loads(fixture_bytes("deepseek/chat-nonstream-reasoning.json"))["usage"])
    assert reasoning is not None
    assert (reasoning.completion_tokens, reasoning.reasoning_tokens) == (345, 315)


def test_cached_tokens_and_cache_writes() -> None:
    usage = usage_from(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 192},
            "cost": 0,
        }
    )
    assert usage == Usage(2006, 300, 1920, 64, 192, 0.0)
    # DeepSeek's own name for cache reads
    assert usage_from({"prompt_tokens": 100, "prompt_cache_hit_tokens": 64}) == Usage(100, 0, 64)


@pytest.mark.parametrize(
    "value",
    [None, "usage", [], {"prompt_tokens": "12", "completion_tokens": True, "cost": "0.1"}],
)
def test_usage_from_odd_values(value: object) -> None:
    usage = usage_from(value)
    assert usage is None or usage == Usage()


# --- the registry -----------------------------------------------------------------------------------------


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    load_plugin.cache_clear()
    yield
    load_plugin.cache_clear()


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("openai_compatible", OpenAICompatible),
        ("openai", OpenAI),
        ("aihubmix", AiHubMix),
        ("openrouter", OpenRouter),
    ],
)
def test_builtins_load_by_name(name: str, cls: type[Provider]) -> None:
    assert load_plugin(name) is cls


def test_anthropic_is_a_builtin() -> None:
    assert load_plugin("anthropic").plugin_name == "anthropic"
    names = builtin_names()
    assert names == sorted(names)
    assert {"aihubmix", "anthropic", "azure", "bedrock", "gemini", "gemini_openai", "openai"} <= set(names)
    assert {"openai_compatible", "openrouter"} <= set(names)


def test_package_module_class(fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_llm_plugin.py").write_text(
        textwrap.dedent(
            """
            from plugins.openai_compatible import OpenAICompatible

            class Acme(OpenAICompatible):
                plugin_name = "acme"
                default_base_url = "https://llm.acme.example/v1"

            class NotAPlugin:
                pass

            not_a_class = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        acme = load_plugin("acme_llm_plugin:Acme")
        assert acme.plugin_name == "acme"
        assert issubclass(acme, Provider)
        assert load_plugin("plugins.openrouter:OpenRouter") is OpenRouter
        for spec in ("acme_llm_plugin:NotAPlugin", "acme_llm_plugin:not_a_class", "proxy.plugin:Provider"):
            with pytest.raises(
                PluginNotFound, match=r"is not a provider plugin \(a subclass of proxy\.plugin"
            ):
                load_plugin(spec)
        with pytest.raises(PluginNotFound, match=r"^module 'acme_llm_plugin' has no attribute 'Missing'$"):
            load_plugin("acme_llm_plugin:Missing")
    finally:
        sys.modules.pop("acme_llm_plugin", None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "aihubmx",
            r"^unknown plugin 'aihubmx' \(did you mean 'aihubmix'\?\) \(built-ins: aihubmix, anthropic, ",
        ),
        (
            "zzz",
            r"^unknown plugin 'zzz' \(built-ins: aihubmix, anthropic, azure, bedrock, gemini, ",
        ),
        ("OpenAI", r"^unknown plugin 'OpenAI'"),
        (
            "no_such_package.mod:Thing",
            r"^cannot import 'no_such_package\.mod' \(No module named 'no_such_package'\)$",
        ),
        (":Thing", r"^':Thing': use 'package\.module:Class'$"),
        ("plugins.openai:", r"^'plugins\.openai:': use 'package\.module:Class'$"),
        (".relative:Thing", r"^cannot import '\.relative'"),
        ("json:JSONDecoder", r"^'json:JSONDecoder' is not a provider plugin"),
    ],
)
def test_bad_plugin_names_are_clear(fresh_registry: None, spec: str, message: str) -> None:
    with pytest.raises(PluginNotFound, match=message):
        load_plugin(spec)


def test_entry_points_come_first(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    points = [
        EntryPoint(name="openai", value="plugins.openrouter:OpenRouter", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="broken", value="no_such_dist.plugin:Thing", group=registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
    assert load_plugin("openai") is OpenRouter  # an installed distribution may shadow a built-in name
    with pytest.raises(PluginNotFound, match=r"^cannot load entry point 'no_such_dist\.plugin:Thing' \("):
        load_plugin("broken")


def test_output_chars_counts_text_reasoning_and_tool_arguments_as_sent() -> None:
    """The estimate's counter (issue 14, item 9): the characters of every output string in a chunk,
    escapes as written, nothing else (ids, model names and roles do not count)."""
    chunk = orjson.dumps(
        {
            "id": "chatcmpl-123",
            "model": "gpt-x",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": 'say "hi"\\'}},
                {"index": 1, "delta": {"reasoning_content": "think"}},
                {"index": 2, "delta": {"tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}]}},
                {"index": 3, "delta": {"tool_calls": [{"function": {"arguments": "2}"}}]}},
            ],
        }
    )
    content = len(orjson.dumps('say "hi"\\')) - 2  # 9 characters, 3 of them escaped: 12 as sent
    assert output_chars(chunk) == content + len("think") + len('{\\"a\\":1}') + len("2}")
    assert output_chars(b'{"choices":[{"index":0,"text":"abc","finish_reason":null}]}') == 3
    assert output_chars(b'{"choices":[],"usage":{"prompt_tokens":3}}') == 0
    assert output_chars(b'{"choices":[{"delta":{"content":"cut here') == len("cut here")


@pytest.mark.parametrize("chunks", [3, 2_000])  # held whole, and past HELD_FOR_COUNTING (counted in batches)
def test_a_streams_output_is_counted_when_asked_and_only_without_usage(chunks: int) -> None:
    from plugins.openai_compatible import HELD_FOR_COUNTING, OpenAIStreamReader
    from proxy.upstream.sse import SSEEvent

    def chunk(text: str) -> bytes:
        return orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": text}}]})

    datas = [chunk(f"word{i} ") for i in range(chunks)]
    assert (sum(map(len, datas)) > HELD_FOR_COUNTING) is (chunks > 3)
    reader = OpenAIStreamReader(include_usage=False)
    for data in datas:
        reader.on_event(SSEEvent(b"data: " + data + b"\n\n", data))
    assert (
        reader.counted_output()
        == sum(output_chars(d) for d in datas)
        == sum(len(f"word{i} ") for i in range(chunks))
    )
    assert reader.counted_output() == reader.output_chars  # asked twice: the same count

    with_usage = OpenAIStreamReader(include_usage=False)
    for data in datas:
        with_usage.on_event(SSEEvent(b"", data))
    usage = orjson.dumps({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    with_usage.on_event(SSEEvent(b"", usage))
    assert with_usage.usage is not None and with_usage._held is None  # nothing kept once the usage came
