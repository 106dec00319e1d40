"""A second opinion on the relayed streams: an independent SSE consumer (``aiohttp-sse-client``, an
EventSource) reads, over TCP from a gateway process, the same events the provider sent. The byte-exact
comparison of every recorded stream is in tests/dataplane/test_stream_fixtures.py; this one checks that a
client with its own parser agrees on the events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp_sse_client.client import EventSource
from support import FIXTURES, KEY, base_config, fixture

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess
from proxy.upstream.sse import SSEParser

STREAMS = [
    "openai/chat-stream-include-usage.sse",
    "openai/chat-stream-no-usage.sse",
    "openai/chat-stream-tool-calls.sse",
    "openai/chat-stream-parallel-tool-calls.sse",
    "openai/chat-stream-n3-choices.sse",
    "openai/chat-stream-refusal.sse",
    "openai/chat-stream-usage-null-every-chunk.sse",
    "openai/chat-stream-finish-length.sse",
]


@pytest.fixture(scope="module")
def gateway(
    threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> GatewayProcess:
    return gateway_process(base_config(threaded_fake.url))


def sent_events(name: str) -> list[str]:
    """The ``data`` of each event in the recorded stream, as the provider sent them."""
    parser = SSEParser()
    events = parser.feed((FIXTURES / name).read_bytes())
    assert not parser.close(), "a recorded stream that ends whole"
    return [event.data.decode() for event in events if event.data is not None]


def _no_reconnect() -> None:
    # An EventSource reconnects when the stream ends (and would send the POST again): a stream must be
    # read to its [DONE], and any error or end before it fails the test instead.
    raise AssertionError("the stream failed or ended before [DONE]")


@pytest.mark.parametrize("name", STREAMS)
async def test_an_event_source_reads_the_events_the_provider_sent(
    gateway: GatewayProcess, threaded_fake: ThreadedFakeProvider, name: str
) -> None:
    model = "sse-" + name.rsplit("/", 1)[1]
    threaded_fake.script(model, fixture(name))
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},  # so that every event the provider sent is relayed
    }
    seen: list[str] = []
    async with (
        aiohttp.ClientSession() as session,
        EventSource(
            f"{gateway.url}/v1/chat/completions",
            option={"method": "POST"},
            session=session,
            max_connect_retry=0,
            on_error=_no_reconnect,
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as source,
    ):
        async for event in source:
            seen.append(event.data)
            if event.data == "[DONE]":
                break
    assert seen == sent_events(name)
    assert seen[-1] == "[DONE]"
