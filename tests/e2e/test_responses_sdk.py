"""End to end: the official ``openai`` package's Responses API (sync and async) against a real gateway
process, through a native route (the ``openai`` plugin, the fake provider replaying the recorded
Responses traffic) and a translated route (a chat-only provider, the fake provider answering chat)."""

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

OTHER_KEY = "egw-other-key-0123456789"
WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    return threaded_fake


@pytest.fixture(scope="module")
def gateway(fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    config = base_config(fake.url)
    config["providers"]["oai"] = {"plugin": "openai", "base_url": fake.url, "api_key": "sk-test-oai"}
    config["models"] = {
        "native-*": {"targets": [{"provider": "oai"}]},
        "chat-*": {"targets": [{"provider": "local"}]},
        "mixed-*": {"targets": [{"provider": "oai"}, {"provider": "local"}]},
    }
    config["keys"].append({"name": "other", "tenant": "acme", "key": OTHER_KEY})
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


def record_of(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    [record] = records(gateway, request_id=request_id)
    return record


def expected(name: str) -> dict[str, Any]:
    index = json.loads((FIXTURES / "index.json").read_text())
    entry: dict[str, Any] = next(e for e in index if e["file"] == name)["expected"]
    return entry


# -- native: the provider's bytes relayed, usage read from them ------------------------------------------


def test_native_text_sync(client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess) -> None:
    fake.script("native-text", fixture("openai/responses-nonstream.json"))
    raw = client.responses.with_raw_response.create(model="native-text", input="What is 4200 + 42?")
    response = raw.parse()
    assert "4242" in response.output_text
    sent = fake.received[-1]
    assert sent.path == "/v1/responses" and sent.body["input"] == "What is 4200 + 42?"
    assert "stream_options" not in sent.body
    assert sent.headers["Authorization"] == "Bearer sk-test-oai"
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    assert record["endpoint"] == "responses" and record["provider"] == "oai"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (16, 11)
    assert not record["estimated"]


RESPONSES_STREAMS = [
    "openai/responses-stream-text.sse",
    "openai/responses-stream-cached-tokens.sse",
    "openai/responses-stream-function-call.sse",
    "openai/responses-stream-reasoning-summary.sse",
    "openai/responses-stream-incomplete-max-output-tokens.sse",
]


@pytest.mark.parametrize("name", RESPONSES_STREAMS)
async def test_native_stream_fixture_relays_with_its_usage(
    aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess, name: str
) -> None:
    model = "native-" + name.rsplit("/", 1)[1]
    fake.script(model, fixture(name))
    raw = await aclient.responses.with_raw_response.create(model=model, input="hi", stream=True)
    stream = raw.parse()
    kinds = [event.type async for event in stream]
    want = expected(name)
    assert kinds[-1] == want["terminated_by"] and len(kinds) == want["events"]
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    usage = want["usage"]
    assert record["endpoint"] == "responses" and record["outcome"] == "completed"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert record["cached_tokens"] == usage["cached_tokens"]
    assert record["reasoning_tokens"] == usage["reasoning_tokens"]
    assert not record["estimated"]


def test_native_error_event_ends_the_stream_with_an_error(
    client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script("native-error", fixture("openai/responses-stream-error-event-failed.sse"))
    raw = client.responses.with_raw_response.create(model="native-error", input="hi", stream=True)
    events = list(raw.parse())
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    assert "exceeded your current quota" in events[-1].message  # type: ignore[union-attr]
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    assert record["outcome"] == "upstream_error" and record["completion_tokens"] == 0


def test_native_previous_response_id_goes_to_the_provider(
    client: openai.OpenAI, fake: ThreadedFakeProvider
) -> None:
    fake.script("native-follow", fixture("openai/responses-nonstream.json"))
    client.responses.create(model="native-follow", input="And times 2?", previous_response_id="resp_abc")
    assert fake.received[-1].body["previous_response_id"] == "resp_abc"


def test_native_function_tool_round_trip(client: openai.OpenAI, fake: ThreadedFakeProvider) -> None:
    fake.script(
        "native-tools",
        fixture("openai/responses-stream-function-call.sse"),
        fixture("openai/responses-nonstream.json"),
    )
    with client.responses.stream(model="native-tools", input="Weather?", tools=[WEATHER_TOOL]) as stream:
        first = stream.get_final_response()
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    second = client.responses.create(
        model="native-tools",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert second.output_text
    sent = fake.received[-1].body
    assert sent["previous_response_id"] == first.id, "the provider keeps its own conversation"
    assert sent["input"] == [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]


async def test_native_json_schema_goes_as_sent(
    aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider
) -> None:
    fake.script("native-json", fixture("openai/responses-nonstream.json"))
    fmt: Any = {"type": "json_schema", "name": "sum", "schema": {"type": "object"}, "strict": True}
    await aclient.responses.create(model="native-json", input="4200 + 42?", text={"format": fmt})
    assert fake.received[-1].body["text"] == {"format": fmt}


def test_a_providers_own_response_is_not_kept_by_the_gateway(
    client: openai.OpenAI, fake: ThreadedFakeProvider
) -> None:
    fake.script("native-kept", fixture("openai/responses-nonstream.json"))
    created = client.responses.create(model="native-kept", input="hi")
    with pytest.raises(openai.NotFoundError, match="a provider's own responses stay with it"):
        client.responses.retrieve(created.id)


# -- translated: a chat-only provider behind /v1/responses -------------------------------------------------


def test_translated_text_sync(
    client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script("chat-text", Behaviour.answer("Hello there.", usage=(12, 3)))
    raw = client.responses.with_raw_response.create(
        model="chat-text",
        instructions="Be brief.",
        input="Say hello",
        max_output_tokens=50,
        temperature=0.2,
        reasoning={"effort": "low"},
    )
    response = raw.parse()
    assert response.output_text == "Hello there."
    assert response.status == "completed" and response.model == "chat-text"
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (
        12,
        3,
    )
    sent = fake.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent.body["max_tokens"] == 50 and sent.body["temperature"] == 0.2
    assert sent.body["reasoning_effort"] == "low"
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    assert record["endpoint"] == "responses" and record["provider"] == "local"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (12, 3)


async def test_translated_stream_async(
    aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script("chat-stream", Behaviour.answer("Hello streaming world.", usage=(9, 4)))
    raw = await aclient.responses.with_raw_response.create(model="chat-stream", input="hi", stream=True)
    events = [event async for event in raw.parse()]
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert text == "Hello streaming world."
    done = events[-1].response  # type: ignore[union-attr]
    assert done.output_text == text and done.usage is not None and done.usage.output_tokens == 4
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    assert record["endpoint"] == "responses" and record["outcome"] == "completed"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (9, 4)


@pytest.mark.parametrize("stream", [False, True])
def test_translated_function_tool_round_trip(
    client: openai.OpenAI, fake: ThreadedFakeProvider, stream: bool
) -> None:
    model = f"chat-tools-{stream}"
    call = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    fake.script(model, Behaviour.answer(tool_calls=[call]), Behaviour.answer("Sunny in Paris."))
    if stream:
        with client.responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER_TOOL]) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER_TOOL])
    [item] = first.output
    assert item.type == "function_call" and item.name == "get_weather"
    assert json.loads(item.arguments) == {"city": "Paris"} and item.call_id == "call_1"
    assert fake.received[-1].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "sunny, 24C"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "Sunny in Paris." and second.previous_response_id == first.id
    assert fake.received[-1].body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24C"},
    ]


async def test_translated_json_schema_output(aclient: openai.AsyncOpenAI, fake: ThreadedFakeProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    fake.script("chat-json", Behaviour.answer('{"answer": 4242}'))
    response = await aclient.responses.create(
        model="chat-json",
        input="What is 4200 + 42?",
        text={"format": {"type": "json_schema", "name": "sum", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"answer": 4242}
    assert fake.received[-1].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "sum", "schema": schema, "strict": True},
    }


def test_translated_response_is_kept_for_its_key_only(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    created = client.responses.create(model="chat-kept", input="Say hello")
    again = client.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    items = client.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    other = openai.OpenAI(base_url=gateway.url + "/v1", api_key=OTHER_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="chat-kept", input="again", previous_response_id=created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.cancel(created.id)
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


async def test_store_false_keeps_nothing(aclient: openai.AsyncOpenAI) -> None:
    created = await aclient.responses.create(model="chat-unkept", input="Say hello", store=False)
    with pytest.raises(openai.NotFoundError):
        await aclient.responses.retrieve(created.id)


def test_hosted_tool_on_a_translated_route_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="chat-web", input="news?", tools=[{"type": "web_search"}])
    assert raised.value.param == "tools[0].type"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="chat-bg", input="later", background=True)
    assert raised.value.param == "background"  # type: ignore[attr-defined]


def test_a_hosted_tool_goes_native_and_skips_the_chat_target(
    client: openai.OpenAI, fake: ThreadedFakeProvider
) -> None:
    fake.script("mixed-web", fixture("openai/responses-nonstream.json"))
    client.responses.create(model="mixed-web", input="news?", tools=[{"type": "web_search"}])
    assert fake.received[-1].path == "/v1/responses"


def test_fallback_from_native_to_translated(
    client: openai.OpenAI, fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    fake.script(
        "mixed-fall", Behaviour.json(503, {"error": {"message": "overloaded"}}), Behaviour.answer("Saved.")
    )
    raw = client.responses.with_raw_response.create(model="mixed-fall", input="hi")
    assert raw.parse().output_text == "Saved."
    assert [r.path for r in fake.received[-2:]] == ["/v1/responses", "/v1/chat/completions"]
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    assert record["endpoint"] == "responses" and record["provider"] == "local" and record["attempts"] == 2
