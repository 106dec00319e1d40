"""One SSE event's size is bounded (``server.max_sse_event_bytes``): the parser gives up on a stream whose
block passes the bound, however the reads fall and before the block's end arrives; the tap turns that
into a server-fault error; the gateway answers 502 before the first byte and an error event after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from support import AUTH, base_config

from plugins.openai_compatible import OpenAIStreamReader
from proxy.config import ConfigError, parse_settings
from proxy.dataplane.tap import StreamTap
from proxy.plugin import Fault
from proxy.testing.fake_provider import Behaviour, FakeProvider
from proxy.upstream.sse import DEFAULT_MAX_EVENT_BYTES, EventTooLarge, SSEEvent, SSEParser

BEFORE, AFTER = b"data: before\n\n", b"data: after\n\n"
# (block, its size: every byte but the terminator of the blank line that ends it)
BLOCKS = {
    "data line": (b"data: " + b"x" * 40 + b"\n\n", 47),
    "CRLF": (b"data: " + b"x" * 40 + b"\r\n\r\n", 48),
    "CR": (b"data: " + b"x" * 40 + b"\r\r", 47),
    "lines": (b"event: e\ndata: 1\ndata: 2\nid: 3\n\n", 31),
    "comments": (b": one two three\n: four\r\n\r\n", 24),
}


def feed_all(parser: SSEParser, stream: bytes, cuts: list[int]) -> tuple[list[SSEEvent], bool]:
    """The events the parser gave, and whether it gave up on the stream."""
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        try:
            events += parser.feed(stream[start:cut])
        except EventTooLarge as exc:
            return events + exc.events, True
        start = cut
    return events, False


def every_split(stream: bytes) -> list[list[int]]:
    return [[]] + [[a] for a in range(1, len(stream))] + [list(range(1, len(stream)))]


@pytest.mark.parametrize("name", BLOCKS)
def test_a_block_of_the_bound_passes_one_byte_more_does_not(name: str) -> None:
    block, size = BLOCKS[name]
    stream = BEFORE + block + AFTER
    for cuts in every_split(stream):
        events, gave_up = feed_all(SSEParser(size), stream, cuts)
        assert not gave_up and [e.data for e in events if e.data is not None][-1] == b"after", cuts
        events, gave_up = feed_all(SSEParser(size - 1), stream, cuts)
        assert gave_up and [e.data for e in events] == [b"before"], cuts


def test_a_leading_bom_counts_in_the_first_block() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    for cuts in every_split(stream):
        assert not feed_all(SSEParser(11), stream, cuts)[1]
        assert feed_all(SSEParser(10), stream, cuts)[1]


def test_a_line_without_end_is_refused_as_soon_as_it_passes_the_bound() -> None:
    parser = SSEParser(10_000)
    read = b"x" * 1024
    parser.feed(b"data: ")
    for _ in range(9):  # 6 + 9 KiB: still within the bound, kept
        assert parser.feed(read) == []
    with pytest.raises(EventTooLarge) as raised:
        parser.feed(read)
    assert raised.value.limit == 10_000 and raised.value.events == []
    assert parser.feed(b"\n\ndata: later\n\n") == []  # the stream cannot be followed any further


def test_data_lines_without_a_blank_line_are_refused() -> None:
    parser = SSEParser(1000)
    with pytest.raises(EventTooLarge):
        for _ in range(1000):
            parser.feed(b"data: 0123456789\n")


def test_the_default_bound_is_16_mib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 16 * 1024 * 1024
    assert SSEParser()._limit == DEFAULT_MAX_EVENT_BYTES


def chunk(content: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n"


def test_the_tap_relays_what_came_before_then_fails_as_a_server_fault() -> None:
    tap = StreamTap(OpenAIStreamReader(include_usage=False), max_event_bytes=100)
    first = chunk("hello")
    assert tap.feed(first + b"data: " + b"x" * 200) == first
    assert tap.events == 1
    error = tap.error
    assert error is not None and error.status == 502 and error.fault is Fault.SERVER
    assert "larger than 100 bytes" in error.message and "server.max_sse_event_bytes" in error.message


def test_the_tap_ignores_an_oversized_event_after_the_end_marker() -> None:
    tap = StreamTap(OpenAIStreamReader(include_usage=False), max_event_bytes=100)
    tap.feed(chunk("hi") + b"data: [DONE]\n\n" + b"data: " + b"x" * 200)
    assert tap.finished and tap.error is None


def test_the_providers_own_error_comes_first() -> None:
    tap = StreamTap(OpenAIStreamReader(include_usage=False), max_event_bytes=100)
    error_event = b'data: {"error":{"message":"boom","type":"server_error"}}\n\n'
    tap.feed(chunk("hi") + error_event + b"data: " + b"x" * 200)
    assert tap.error is not None and tap.error.message == "boom"


def test_the_setting() -> None:
    config = base_config("http://127.0.0.1:1")
    assert parse_settings(config).server.max_sse_event_bytes == DEFAULT_MAX_EVENT_BYTES
    config["server"]["max_sse_event_bytes"] = 1024
    assert parse_settings(config).server.max_sse_event_bytes == 1024
    config["server"]["max_sse_event_bytes"] = 0
    with pytest.raises(ConfigError, match="max_sse_event_bytes"):
        parse_settings(config)


def sse(*events: bytes) -> Behaviour:
    return Behaviour(200, b"", "text/event-stream", {}, list(events))


async def stream(make_gateway: Callable[..., Any], fake: FakeProvider, model: str) -> tuple[int, bytes]:
    config = base_config(fake.url)
    config["server"]["max_sse_event_bytes"] = 4096
    client = await make_gateway(config)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        return resp.status, await resp.read()


async def test_before_the_first_event_the_client_gets_502(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    fake.script("big", sse(b"data: " + b"x" * 5000, b"\n\n"))
    status, body = await stream(make_gateway, fake, "big")
    assert status == 502
    error = orjson.loads(body)["error"]
    assert error["type"] == "upstream_error" and "larger than 4096 bytes" in error["message"]


async def test_after_the_first_event_the_stream_ends_with_an_error_event(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    fake.script("big", sse(chunk("hello"), b"data: " + b"x" * 5000, b"\n\n", chunk("", "stop")))
    status, body = await stream(make_gateway, fake, "big")
    assert status == 200
    events = [e for e in body.split(b"\n\n") if e]
    assert events[0] == chunk("hello").strip()
    error = orjson.loads(events[-1].removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_error" and "larger than 4096 bytes" in error["message"]
    assert b"[DONE]" not in body and len(events) == 2
