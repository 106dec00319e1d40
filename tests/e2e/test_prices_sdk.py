"""End to end: the official ``openai`` package against a gateway process with no ``pricing.default``,
so every price comes from its real source: the genai-prices package for the vendors' models, nothing for
a model nobody prices (served under ``pricing_unknown: allow``, as the example config does behind
``openrouter/*``, or refused elsewhere). The ledger says which source priced each request."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest
from support import ADMIN, KEY, base_config, fixture

from proxy.metering.price_db import PriceDatabase
from proxy.metering.pricing import cost_micro_usd
from proxy.plugin import Usage
from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def gateway(
    threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> GatewayProcess:
    config = base_config(threaded_fake.url)
    config["pricing"] = {}  # no default: the package or nothing
    config["providers"]["openrouter"]["pricing_unknown"] = "allow"
    config["providers"]["groq"] = {"plugin": "groq", "base_url": threaded_fake.url, "api_key": "sk-groq"}
    config["providers"]["deepseek"] = {
        "plugin": "deepseek",
        "base_url": threaded_fake.url,
        "api_key": "sk-ds",
    }
    config["models"]["fast"] = {"targets": [{"provider": "groq", "model": "llama-3.3-70b-versatile"}]}
    config["models"]["reasoner"] = {"targets": [{"provider": "deepseek", "model": "deepseek-reasoner"}]}
    return gateway_process(config)


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def record_of(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{gateway.url}/admin/usage/records?request_id={request_id}", headers=ADMIN)
    with urllib.request.urlopen(req, timeout=5) as resp:
        [record] = json.load(resp)["data"]
        return record  # type: ignore[no-any-return]


def expected_cost(plugin: str, model: str, prompt: int, completion: int) -> int:
    price = PriceDatabase().price(plugin, model)
    assert price is not None
    return cost_micro_usd(Usage(prompt_tokens=prompt, completion_tokens=completion), price)


def stream_text(client: openai.OpenAI, model: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return text, raw.headers["x-efflux-request-id"]


def test_a_groq_stream_priced_by_the_package(
    client: openai.OpenAI, threaded_fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    threaded_fake.script("llama-3.3-70b-versatile", fixture("groq/chat-stream-usage-twice.sse"))
    text, request_id = stream_text(client, "fast")
    assert text
    record = record_of(gateway, request_id)
    assert (record["provider"], record["prompt_tokens"], record["completion_tokens"]) == ("groq", 45, 3)
    assert (record["price_source"], record["estimated"]) == ("genai-prices", False)
    assert record["cost_micro_usd"] == expected_cost("groq", "llama-3.3-70b-versatile", 45, 3) > 0


def test_a_deepseek_reasoning_answer_priced_by_the_package(
    client: openai.OpenAI, threaded_fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    threaded_fake.script("deepseek-reasoner", fixture("deepseek/chat-nonstream-reasoning.json"))
    raw = client.chat.completions.with_raw_response.create(model="reasoner", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content
    record = record_of(gateway, raw.headers["x-efflux-request-id"])
    assert (record["prompt_tokens"], record["completion_tokens"], record["reasoning_tokens"]) == (
        18,
        345,
        315,
    )
    assert record["price_source"] == "genai-prices"
    assert record["cost_micro_usd"] == expected_cost("deepseek", "deepseek-reasoner", 18, 345) > 0


def test_openrouter_any_model_serves_priced_or_unpriced(
    client: openai.OpenAI, threaded_fake: ThreadedFakeProvider, gateway: GatewayProcess
) -> None:
    stream = fixture("openrouter/chat-stream-processing-usage-cost.sse")
    threaded_fake.script("meta-llama/llama-3.1-8b-instruct", stream)
    threaded_fake.script("someone/invented-model", stream)
    _, priced = stream_text(client, "openrouter/meta-llama/llama-3.1-8b-instruct")
    record = record_of(gateway, priced)
    assert (record["price_source"], record["estimated"]) == ("genai-prices", False)
    assert record["cost_micro_usd"] == expected_cost("openrouter", "meta-llama/llama-3.1-8b-instruct", 21, 3)
    _, unpriced = stream_text(client, "openrouter/someone/invented-model")
    record = record_of(gateway, unpriced)
    assert (record["price_source"], record["estimated"], record["cost_micro_usd"]) == ("none", True, 0)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (21, 3)  # the provider's own usage
    assert record["provider_cost_micro_usd"] == 5  # OpenRouter's own figure is still recorded beside it


def test_an_unpriced_model_elsewhere_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="house-model", messages=MESSAGES)
    assert "has no price" in str(caught.value) and "pricing.unknown: allow" in str(caught.value)
