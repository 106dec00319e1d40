"""Request ids on streamed answers (item 16 of issue 14): the official ``openai`` package reads
``x-request-id`` and ``x-efflux-request-id`` from a stream's headers, and the ledger record carries the same
id, so a client can find its stream's record."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest
from support import ADMIN, KEY, base_config

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def gateway(
    threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> GatewayProcess:
    return gateway_process(base_config(threaded_fake.url))


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def record(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{gateway.url}/admin/usage/records?request_id={request_id}", headers=ADMIN)
    with urllib.request.urlopen(req, timeout=5) as resp:
        [found] = json.load(resp)["data"]
        assert isinstance(found, dict)
        return found


def test_a_stream_carries_the_request_id_of_its_ledger_record(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="m1", messages=MESSAGES, stream=True
    ) as response:
        headers = response.headers
        chunks = list(response.parse())
    assert chunks
    assert "x-efflux-request-id" in headers, dict(headers)
    request_id = headers["x-efflux-request-id"]
    assert headers["x-request-id"] == request_id
    assert record(gateway, request_id)["request_id"] == request_id


def test_a_stream_echoes_the_clients_own_request_id(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="m1", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "client-trace-42"}
    ) as response:
        headers = response.headers
        list(response.parse())
    assert headers.get("x-request-id") == "client-trace-42"
    request_id = headers["x-efflux-request-id"]
    assert request_id.startswith("req_")
    assert record(gateway, request_id)["request_id"] == request_id
