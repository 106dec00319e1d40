"""End to end: the OpenAI Agents SDK, with its default model (the Responses API), runs a tool-using agent
through a gateway process whose route is served by a chat-only provider (translated): the scripted
provider first asks for the tool, then answers with text."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import agents
import openai
import pytest
from support import KEY, base_config

from proxy.testing.fake_provider import Behaviour, ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gateway(
    threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> GatewayProcess:
    return gateway_process(base_config(threaded_fake.url))


@pytest.fixture(autouse=True)
def agents_client(gateway: GatewayProcess) -> Iterator[None]:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_default_openai_api("responses")
    agents.set_tracing_disabled(True)
    yield


def weather_agent(model: str, calls: list[str]) -> object:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny and 24C in {city}"

    return agents.Agent(name="Forecaster", instructions="Answer briefly.", model=model, tools=[get_weather])


def script(fake: ThreadedFakeProvider, model: str) -> None:
    call = {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    fake.script(model, Behaviour.answer(tool_calls=[call]), Behaviour.answer("It is sunny in Paris."))


async def test_an_agent_calls_its_tool_and_answers(threaded_fake: ThreadedFakeProvider) -> None:
    script(threaded_fake, "agent-run")
    calls: list[str] = []
    result = await agents.Runner.run(weather_agent("agent-run", calls), "What is the weather in Paris?")
    assert result.final_output == "It is sunny in Paris."
    assert calls == ["Paris"]
    first, second = [r.body for r in threaded_fake.received if r.body and r.body.get("model") == "agent-run"]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["messages"][0] == {"role": "system", "content": "Answer briefly."}
    tool_turn = second["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["tool_call_id"] == "call_w1"
    assert "sunny and 24C in Paris" in tool_turn["content"]


async def test_a_streamed_agent_run(threaded_fake: ThreadedFakeProvider) -> None:
    script(threaded_fake, "agent-stream")
    calls: list[str] = []
    result = agents.Runner.run_streamed(weather_agent("agent-stream", calls), "Weather in Paris?")
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds
    assert result.final_output == "It is sunny in Paris." and calls == ["Paris"]


async def test_an_agent_with_structured_output(threaded_fake: ThreadedFakeProvider) -> None:
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        sunny: bool

    threaded_fake.script("agent-typed", Behaviour.answer('{"city": "Paris", "sunny": true}'))
    agent = agents.Agent(name="Typed", model="agent-typed", output_type=Forecast)
    result = await agents.Runner.run(agent, "Is it sunny in Paris?")
    assert result.final_output == Forecast(city="Paris", sunny=True)
    sent = threaded_fake.received[-1].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["properties"].keys() == {"city", "sunny"}
