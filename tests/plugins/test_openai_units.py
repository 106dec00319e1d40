"""The OpenAI family's other endpoints in the shared base: which plugins declare them, the units read from
each recorded answer, and the request built for an upload (streamed, with the route's model)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from plugins.aihubmix import AiHubMix
from plugins.anthropic.provider import Anthropic
from plugins.openai import OpenAI
from plugins.openai_compatible import OpenAICompatible
from plugins.openrouter import OpenRouter
from proxy.plugin import OPENAI_FAMILY, UNIT_ENDPOINTS, Call, Endpoint, ProviderSettings, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INDEX = {e["file"]: e for e in orjson.loads((FIXTURES / "index.json").read_bytes())}


def fixture_bytes(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == INDEX[name]["sha256"], f"{name} was reformatted"
    return data


def plugin(cls: type[OpenAICompatible] = OpenAI) -> OpenAICompatible:
    return cls(ProviderSettings(name="p", base_url="http://127.0.0.1:9/v1", api_key="sk-up"))


def read(endpoint: Endpoint, body: bytes, **kw: Any) -> Reply:
    reply = plugin().read_reply(Call(endpoint, {}, "m", False, False, "sk-up", **kw), body)
    assert isinstance(reply, Reply)
    return reply


def test_who_declares_the_endpoints() -> None:
    assert OpenAI.endpoints >= OPENAI_FAMILY and Endpoint.RERANK not in OpenAI.endpoints
    assert OpenAICompatible.endpoints >= UNIT_ENDPOINTS  # vLLM, Jina, Cohere-compatible servers
    for cls in (OpenRouter, AiHubMix, Anthropic):
        assert not UNIT_ENDPOINTS & cls.endpoints, cls.plugin_name


def test_moderations_have_nothing_to_count() -> None:
    body = fixture_bytes("openai/moderations.json")
    reply = read(Endpoint.MODERATIONS, body)
    assert reply.body == body and reply.usage is not None and reply.usage.units == 0


def test_images_count_their_data_entries() -> None:
    reply = read(Endpoint.IMAGES, fixture_bytes("openai/images-generations-url.json"))
    assert reply.usage is not None and reply.usage.units == 1


def test_gpt_image_usage_is_read_as_tokens() -> None:
    usage_object = {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210}
    body = orjson.dumps({"created": 1, "data": [{"b64_json": "AA=="}] * 2, "usage": usage_object})
    usage = read(Endpoint.IMAGES, body).usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.units) == (50, 4160, 2)


def test_a_verbose_transcription_gives_its_seconds() -> None:
    body = fixture_bytes("openai/audio-transcriptions-verbose-json.json")
    usage = read(Endpoint.TRANSCRIPTIONS, body).usage
    assert usage is not None and usage.units == INDEX["openai/audio-transcriptions-verbose-json.json"][
        "expected"]["usage"]["seconds"]  # fmt: skip


def test_a_plain_transcription_says_nothing_of_its_length() -> None:
    usage = read(Endpoint.TRANSCRIPTIONS, fixture_bytes("openai/audio-transcriptions.json")).usage
    assert usage is not None and usage.units is None


def test_a_duration_alone_is_rounded_up() -> None:
    usage = read(Endpoint.TRANSLATIONS, b'{"text": "hi", "duration": 3.2}').usage
    assert usage is not None and usage.units == 4


def test_gpt_4o_transcribe_usage_is_tokens() -> None:
    body = b'{"text": "hi", "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 45}}'
    usage = read(Endpoint.TRANSCRIPTIONS, body).usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.units) == (14, 45, None)


class _Upload:
    content_type = "multipart/form-data; boundary=b"

    def __init__(self) -> None:
        self.models: list[str] = []

    def for_model(self, model: str) -> Any:
        self.models.append(model)
        return _Stream()


class _Stream:
    length, started = 3, False

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b"abc"


def test_a_text_transcript_is_passed_as_text() -> None:
    reply = read(Endpoint.TRANSCRIPTIONS, b"1\n00:00:00,000 --> 00:00:01,000\nhi\n", upload=_Upload())
    assert reply.content_type.startswith("text/plain") and reply.usage is None


def test_an_upload_is_sent_as_a_stream_with_the_routes_model() -> None:
    upload = _Upload()
    request = plugin().build_request(
        Call(Endpoint.TRANSCRIPTIONS, {}, "whisper-1", False, False, "sk-up", upload=upload)
    )
    assert request.url == "http://127.0.0.1:9/v1/audio/transcriptions"
    assert request.headers["Content-Type"] == "multipart/form-data; boundary=b"
    assert request.headers["Authorization"] == "Bearer sk-up"
    assert isinstance(request.body, _Stream) and upload.models == ["whisper-1"]


@pytest.mark.parametrize(
    ("answer", "units", "tokens"),
    [
        ({"results": [], "meta": {"billed_units": {"search_units": 2}}}, 2, 0),  # Cohere
        ({"results": [], "usage": {"total_tokens": 37}}, 1, 37),  # vLLM, Jina
    ],
)
def test_rerank_counts_searches(answer: dict[str, Any], units: int, tokens: int) -> None:
    usage = read(Endpoint.RERANK, orjson.dumps(answer)).usage
    assert usage is not None and (usage.units, usage.prompt_tokens) == (units, tokens)
