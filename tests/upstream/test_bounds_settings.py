"""Each bound on a provider's answer, set low in the config, at work in a gateway: an answer just past it
is a 502 naming the provider and the setting, one within it is served. Every answer here is one the
defaults would serve, so a bound that the config did not reach fails these tests.

The provider is a scripted raw server that picks its answer by the requested model."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from support import AUTH, base_config
from upstream_support import RawServer, answer, read_request, serve

MESSAGES = [{"role": "user", "content": "hi"}]
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
RATIO = 20  # upstream.max_decompression_ratio below: the default (100) would inflate both bodies


def reply(content: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def reply_of(size: int) -> bytes:
    """A chat completion of exactly ``size`` bytes."""
    body = reply("a" * (size - len(reply(""))))
    assert len(body) == size
    return body


def head_of(size: int) -> bytes:
    """An answer whose head (status line, headers, blank line) is exactly ``size`` bytes."""
    body = reply("ok")
    bare = len(answer(body, "X-Pad: ")) - len(body)
    raw = answer(body, "X-Pad: " + "p" * (size - bare))
    assert len(raw) - len(body) == size
    return raw


def gzipped(hex_digits: int, run: int) -> bytes:
    """A gzip answer of ~2 MiB of content (past the 1 MiB the ratio waits for) made of random hex digits
    and runs of one letter: the more letters per digit, the more it inflates."""
    rng = random.Random(14)
    pieces, size = [], 0
    while size < 2 * 1024 * 1024:
        piece = f"{rng.getrandbits(4 * hex_digits):0{hex_digits}x}" + "a" * run
        pieces.append(piece)
        size += len(piece)
    packer = zlib.compressobj(wbits=31)
    packed = packer.compress(reply("".join(pieces))) + packer.flush()
    return answer(packed, "Content-Encoding: gzip")


MILD, STEEP = gzipped(16, 100), gzipped(8, 400)  # they inflate ~10 and ~55 times


def ratio(raw: bytes) -> float:
    body = raw[raw.index(b"\r\n\r\n") + 4 :]
    return len(zlib.decompress(body, wbits=31)) / len(raw)


# setting -> (its low value, an answer within it, an answer just past it, the message's words)
CASES: dict[str, tuple[int, bytes, bytes, str]] = {
    "max_response_bytes": (2000, answer(reply_of(2000)), answer(reply_of(2001)), "max_response_bytes (2000)"),
    "max_informational": (2, CONTINUE * 2 + answer(reply("ok")), CONTINUE * 3, "max_informational (2)"),
    # Past the bound: a head that has not ended after 2049 bytes (the rest never comes).
    "max_head_bytes": (2048, head_of(2048), head_of(4096)[:2049], "max_head_bytes (2048)"),
    "max_decompression_ratio": (RATIO, MILD, STEEP, f"max_decompression_ratio ({RATIO})"),
}


async def scripted(answers: dict[str, bytes]) -> RawServer:
    """A provider answering each request by its model; after a partial answer it waits for the gateway
    to hang up."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            request = await read_request(reader)
            model = orjson.loads(request[request.index(b"\r\n\r\n") + 4 :])["model"]
            writer.write(answers[model])
            await writer.drain()

    return await serve(script)


@pytest.fixture
async def provider() -> AsyncIterator[Callable[[dict[str, bytes]], Any]]:
    servers: list[RawServer] = []

    async def start(answers: dict[str, bytes]) -> RawServer:
        servers.append(await scripted(answers))
        return servers[-1]

    yield start
    for server in servers:
        await server.stop()


async def ask(client: Any, model: str) -> tuple[int, str]:
    response = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES}, headers=AUTH
    )
    if response.status == 200:
        await response.read()
        return 200, ""
    return response.status, (await response.json())["error"]["message"]


@pytest.mark.parametrize("setting", CASES)
async def test_each_upstream_bound_from_the_config(
    make_gateway: Callable[..., Any], provider: Callable[..., Any], setting: str
) -> None:
    value, within, past, words = CASES[setting]
    server = await provider({"within": within, "past": past})
    config = base_config(f"http://127.0.0.1:{server.port}/v1", upstream={setting: value})
    # A bound that did not apply leaves the partial answers waiting: a timeout (504), not the 502 asked.
    config["providers"]["local"]["timeouts"] = {"first_byte": "10s"}
    client = await make_gateway(config)
    assert await ask(client, "within") == (200, "")
    status, message = await ask(client, "past")
    assert status == 502 and "'local'" in message and words in message, message


def test_the_compressed_answers_inflate_on_either_side_of_the_bound() -> None:
    assert ratio(MILD) < RATIO < ratio(STEEP) < 100


async def test_a_providers_own_max_response_bytes_wins_over_the_upstream_default(
    make_gateway: Callable[..., Any], provider: Callable[..., Any]
) -> None:
    server = await provider({"mid": answer(reply_of(2000)), "big": answer(reply_of(3001))})
    url = f"http://127.0.0.1:{server.port}/v1"
    config = base_config(url, upstream={"max_response_bytes": 1000})
    config["providers"] = {
        "roomy": {"plugin": "openai_compatible", "base_url": url, "max_response_bytes": 3000},
        "plain": {"plugin": "openai_compatible", "base_url": url},
    }
    config["models"] = {
        "mid": {"targets": [{"provider": "roomy"}]},
        "big": {"targets": [{"provider": "roomy"}]},
        "plain-mid": {"targets": [{"provider": "plain", "model": "mid"}]},
    }
    client = await make_gateway(config)
    assert await ask(client, "mid") == (200, "")
    status, message = await ask(client, "big")
    assert status == 502 and "'roomy'" in message and "max_response_bytes (3000)" in message, message
    status, message = await ask(client, "plain-mid")  # a provider without its own: the upstream default
    assert status == 502 and "'plain'" in message and "max_response_bytes (1000)" in message, message
