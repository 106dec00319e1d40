"""The client's bounds as a gateway client sees them: before the first byte a 502 ``upstream_error`` whose
message names the provider and the bound; after the first byte of a stream, an SSE error event."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import orjson
from support import AUTH

from proxy.testing.fake_provider import Behaviour, FakeProvider

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_a_json_answer_past_max_response_bytes_is_a_502_naming_the_provider(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    reply = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "big",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "a" * 5000}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    fake.script("big", Behaviour.json(200, reply))
    client = await make_gateway(upstream={"max_response_bytes": 2000})
    response = await client.post(
        "/v1/chat/completions", json={"model": "big", "messages": MESSAGES}, headers=AUTH
    )
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["code"] == "upstream_error" or error["type"] == "upstream_error"
    assert "'local'" in error["message"] and "max_response_bytes (2000)" in error["message"]
    fake.script(
        "small",
        Behaviour.json(
            200,
            {
                **reply,
                "choices": [{**reply["choices"][0], "message": {"role": "assistant", "content": "ok"}}],
            },
        ),
    )
    response = await client.post(
        "/v1/chat/completions", json={"model": "small", "messages": MESSAGES}, headers=AUTH
    )
    assert response.status == 200  # the next request on the same provider gets its own answer


async def test_a_gzip_bomb_after_the_first_event_ends_the_stream_with_an_error_event(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    first = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "bomb",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
    }
    packer = zlib.compressobj(wbits=31)
    head = packer.compress(b"data: " + orjson.dumps(first) + b"\n\n") + packer.flush(zlib.Z_SYNC_FLUSH)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()  # 64 MiB of zeros
    fake.script(
        "bomb",
        Behaviour(
            200, b"", "text/event-stream", {"Content-Encoding": "gzip"}, [head, bomb], chunk_delay=0.05
        ),
    )
    client = await make_gateway()
    response = await client.post(
        "/v1/chat/completions", json={"model": "bomb", "messages": MESSAGES, "stream": True}, headers=AUTH
    )
    assert response.status == 200
    body = await response.read()
    assert b'"Hel"' in body
    last = body.strip().split(b"\n\n")[-1]
    assert last.startswith(b"data: {") and b"[DONE]" not in body
    error = orjson.loads(last[len(b"data: ") :])["error"]
    assert "'local'" in error["message"] and "max_decompression_ratio (100)" in error["message"]
