"""The openai plugin's Responses API: the request it builds, the usage it reads from a Response and from the
recorded streams (each relayed byte for byte), the error event, and the estimate when the usage never came."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from support import FIXTURES

from plugins.openai import OpenAI, ResponsesStreamReader, responses_usage
from proxy.dataplane.tap import StreamTap
from proxy.plugin import Call, Endpoint, Fault, ProviderSettings, Reply, Usage

INDEX = json.loads((FIXTURES / "index.json").read_text())
STREAMS = [e for e in INDEX if e["endpoint"] == "/v1/responses" and e["kind"] == "sse"]


def plugin() -> OpenAI:
    return OpenAI(ProviderSettings("oai", "https://api.example/v1", "sk-shared"))


def call(stream: bool = False, **body: Any) -> Call:
    body = {"model": "alias", "input": "hi", **body}
    return Call(Endpoint.RESPONSES, body, "gpt-4o", stream, False, "sk-call")


def test_openai_serves_responses_natively_and_the_base_does_not() -> None:
    from plugins.openai_compatible import OpenAICompatible

    assert Endpoint.RESPONSES in OpenAI.endpoints and Endpoint.CHAT in OpenAI.endpoints
    assert Endpoint.RESPONSES not in OpenAICompatible.endpoints


def test_the_request_goes_to_responses_as_the_client_sent_it() -> None:
    request = plugin().build_request(call(stream=True, previous_response_id="resp_1"))
    assert request.url == "https://api.example/v1/responses"
    body = orjson.loads(request.body)
    assert body == {"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_1"}, "no stream_options"
    assert request.headers["Authorization"] == "Bearer sk-call"
    assert request.headers["Accept"] == "text/event-stream"


def test_a_response_bodys_usage_is_read() -> None:
    raw = (FIXTURES / "openai/responses-nonstream.json").read_bytes()
    reply = plugin().read_reply(call(), raw)
    assert isinstance(reply, Reply) and reply.body == raw
    assert reply.usage == Usage(prompt_tokens=16, completion_tokens=11)


def test_usage_names_map_to_the_gateways() -> None:
    usage = responses_usage(
        {
            "input_tokens": 4765,
            "input_tokens_details": {"cached_tokens": 4608},
            "output_tokens": 711,
            "output_tokens_details": {"reasoning_tokens": 704},
        }
    )
    assert usage == Usage(prompt_tokens=4765, completion_tokens=711, cached_tokens=4608, reasoning_tokens=704)


@pytest.mark.parametrize("entry", STREAMS, ids=[e["file"] for e in STREAMS])
def test_every_recorded_responses_stream_relays_unchanged_with_its_usage(entry: dict[str, Any]) -> None:
    raw = (FIXTURES / entry["file"]).read_bytes()
    tap = StreamTap(plugin().open_stream(call(stream=True)))
    out = b"".join(tap.feed(raw[i : i + 997]) for i in range(0, len(raw), 997))
    expected = entry["expected"]
    assert tap.finished
    if "error" in expected:
        assert tap.error is not None and tap.error.fault is Fault.SERVER
        assert tap.error.message == expected["error"]["message"]
        assert tap.error.code == expected["error"]["code"]
        assert raw.startswith(out), "the events before the error are relayed as they came"
        return
    assert out == raw, "relayed byte for byte"
    usage = expected["usage"]
    assert tap.usage == Usage(
        prompt_tokens=usage["input_tokens"],
        completion_tokens=usage["output_tokens"],
        cached_tokens=usage["cached_tokens"],
        reasoning_tokens=usage["reasoning_tokens"],
    )
    assert tap.reader.complete


def test_a_stream_cut_before_its_end_is_counted_for_the_estimate() -> None:
    raw = (FIXTURES / "openai/responses-stream-text.sse").read_bytes()
    cut = raw[: raw.index(b"event: response.completed")]
    reader = ResponsesStreamReader()
    tap = StreamTap(reader)
    tap.feed(cut)
    assert tap.usage is None and not tap.finished and not reader.complete
    assert tap.output_chars == len("Hello!")  # the two output_text deltas
