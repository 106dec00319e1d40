"""The vendors' own quirks, declared on the OpenAI-compatible base (what the contract suite does not see)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from plugins.openai_compatible import OpenAICompatible
from proxy.config import ConfigError, parse_settings
from proxy.dataplane.tap import StreamTap
from proxy.plugin import Call, Endpoint, Fault, ProviderSettings, Reply, UpstreamError
from proxy.plugin.registry import builtin_names, load_plugin
from proxy.state.snapshot import build_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VENDORS = [
    "deepseek",
    "groq",
    "mistral",
    "xai",
    "together",
    "fireworks",
    "ollama",
    "vllm",
    "lmstudio",
    "newapi",
]


def vendor(name: str) -> OpenAICompatible:
    cls = load_plugin(name)
    assert issubclass(cls, OpenAICompatible)
    return cls(ProviderSettings(name=name, base_url=cls.default_base_url or "https://reseller.example/v1"))


def call(stream: bool = False, **body: object) -> Call:
    return Call(Endpoint.CHAT, {"model": "x", "messages": [], **body}, "m", stream, False, "sk-key")


def test_every_vendor_is_a_built_in_plugin() -> None:
    assert set(VENDORS) <= set(builtin_names())


@pytest.mark.parametrize(
    ("name", "url", "keyless"),
    [
        ("deepseek", "https://api.deepseek.com/v1", False),
        ("groq", "https://api.groq.com/openai/v1", False),
        ("mistral", "https://api.mistral.ai/v1", False),
        ("xai", "https://api.x.ai/v1", False),
        ("together", "https://api.together.xyz/v1", False),
        ("fireworks", "https://api.fireworks.ai/inference/v1", False),
        ("ollama", "http://127.0.0.1:11434/v1", True),
        ("vllm", "http://127.0.0.1:8000/v1", True),
        ("lmstudio", "http://127.0.0.1:1234/v1", True),
    ],
)
def test_default_base_urls_and_keys(name: str, url: str, keyless: bool) -> None:
    plugin = vendor(name)
    assert plugin.base_url == url and plugin.requires_key is not keyless
    assert plugin.build_request(call()).url == f"{url}/chat/completions"


def test_a_keyless_local_server_serves_without_a_key_and_a_vendor_needs_one() -> None:
    settings = parse_settings(
        {
            "providers": {"box": {"plugin": "ollama"}, "groq": {"plugin": "groq"}},
            "models": {"m": {"targets": [{"provider": "box"}, {"provider": "groq"}]}},
        }
    )
    snapshot = build_snapshot(settings)
    assert snapshot.serving("box") and not snapshot.serving("groq")


def test_newapi_needs_its_base_url() -> None:
    with pytest.raises(ConfigError, match=r"providers\.reseller\.base_url: required for plugin 'newapi'"):
        build_snapshot(parse_settings({"providers": {"reseller": {"plugin": "newapi", "api_key": "k"}}}))


def test_groq_usage_only_in_x_groq_is_read() -> None:
    usage = {"prompt_tokens": 45, "completion_tokens": 3, "total_tokens": 48}
    finish = {
        "id": "c",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "x_groq": {"usage": usage},
    }
    stream = b"data: " + orjson.dumps(finish) + b"\n\ndata: [DONE]\n\n"
    for name, found in (("groq", True), ("openai_compatible", False)):
        plugin = vendor(name) if name == "groq" else OpenAICompatible(ProviderSettings("p", "http://h/v1"))
        tap = StreamTap(plugin.open_stream(call(stream=True)))
        tap.feed(stream)
        reader = tap.reader
        assert (reader.usage is not None) is found
        if found:
            assert reader.usage is not None and (
                reader.usage.prompt_tokens,
                reader.usage.completion_tokens,
            ) == (45, 3)


def test_mistral_gets_no_stream_options_and_its_own_parameter_names() -> None:
    request = vendor("mistral").build_request(
        call(stream=True, stream_options={"include_usage": True}, max_completion_tokens=50, seed=7)
    )
    body = orjson.loads(request.body)
    assert "stream_options" not in body
    assert (body["max_tokens"], body["random_seed"]) == (50, 7)
    assert "max_completion_tokens" not in body and "seed" not in body
    # a client's max_tokens stays as it is
    assert orjson.loads(vendor("mistral").build_request(call(max_tokens=5)).body)["max_tokens"] == 5
    # the others keep OpenAI's names and always ask for the stream's usage
    other = orjson.loads(vendor("xai").build_request(call(stream=True, seed=7)).body)
    assert other["seed"] == 7 and other["stream_options"] == {"include_usage": True}


def test_mistral_and_vllm_top_level_errors_are_read() -> None:
    body = orjson.dumps(
        {
            "object": "error",
            "message": {
                "detail": [{"type": "extra_forbidden", "loc": ["body", "seed"], "msg": "Extra inputs"}]
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    )
    error = vendor("mistral").map_error(422, "application/json", body)
    assert (error.status, error.fault, error.type) == (422, Fault.CLIENT, "invalid_request_error")
    assert error.message == "body.seed: Extra inputs"
    vllm = orjson.dumps(
        {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400}
    )
    error = vendor("vllm").map_error(400, "application/json", vllm)
    assert (error.message, error.code, error.fault) == ("max_tokens is too large", "400", Fault.CLIENT)


def test_newapi_quota_exhaustion_is_the_gateways_trouble_not_the_callers() -> None:
    body = (FIXTURES / "oneapi/new-api-403-insufficient-quota.json").read_bytes()
    error = vendor("newapi").map_error(403, "application/json", body)
    assert (error.status, error.fault) == (429, Fault.SERVER)  # the next target is tried
    plain = OpenAICompatible(ProviderSettings("p", "http://h/v1")).map_error(403, "application/json", body)
    assert plain.fault is Fault.CLIENT  # what the generic base would have said


def test_newapi_http_200_error_body_is_an_error() -> None:
    body = (FIXTURES / "oneapi/one-api-retrieve-model-not-found-http200.json").read_bytes()
    result = vendor("newapi").read_reply(call(), body)
    assert isinstance(result, UpstreamError) and (result.status, result.code) == (404, "model_not_found")


def test_deepseek_reasoning_is_relayed_and_counted() -> None:
    body = (FIXTURES / "deepseek/chat-nonstream-reasoning.json").read_bytes()
    reply = vendor("deepseek").read_reply(call(), body)
    assert isinstance(reply, Reply) and reply.body == body  # reasoning_content reaches the client as sent
    assert reply.usage is not None and reply.usage.reasoning_tokens == 315
