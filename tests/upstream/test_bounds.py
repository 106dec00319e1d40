"""The provider client's bounds on what a provider sends back: a non-stream body, decompression (size and
ratio, in bounded steps), a compressed body cut short. Each is a clean error naming the provider and the
bound, the connection is closed, and memory stays small whatever the provider sends."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import pytest
from upstream_support import RawServer, answer, parse, read_request, serve

from proxy.upstream.client import ExchangeBroken, LimitExceeded, UpstreamClient
from proxy.upstream.decoding import INFLATE_STEP
from proxy.upstream.egress import Egress

MiB = 1024 * 1024


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    c = UpstreamClient(environ={})
    yield c
    await c.close()


def bomb(size: int) -> bytes:
    """``size`` zero bytes, gzipped (about a thousand times smaller)."""
    packer = zlib.compressobj(9, wbits=31)
    block = bytes(MiB)
    return b"".join(packer.compress(block) for _ in range(size // MiB)) + packer.flush()


async def closed_by_client(r: asyncio.StreamReader) -> bool:
    """Whether the gateway side closed the connection (EOF or reset within a second)."""
    try:
        return await asyncio.wait_for(r.read(), 1) == b""
    except ConnectionError:  # closed with our bytes unread: a reset
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_body_past_max_response_bytes_is_refused(client: UpstreamClient, framing: str) -> None:
    closed = asyncio.Event()
    big = b"x" * (3 * MiB)

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        try:
            if framing == "length":
                w.write(answer(big))
            else:
                w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(0, len(big), 65536):
                    w.write(b"10000\r\n" + big[i : i + 65536] + b"\r\n")
                w.write(b"0\r\n\r\n")
            await w.drain()
            if await closed_by_client(r):
                closed.set()
        except ConnectionError:  # reset: the client closed with our bytes unread
            closed.set()

    server = await serve(script)
    egress = Egress(provider="embedder", max_response_bytes=MiB)
    response = await client.post(server.url, b"{}", {}, egress=egress)
    with pytest.raises(LimitExceeded) as caught:
        await response.read()
    assert "'embedder'" in str(caught.value) and f"max_response_bytes ({MiB})" in str(caught.value)
    response.release()
    await asyncio.wait_for(closed.wait(), 2)
    # Under the bound, the same answer is read whole.
    response = await client.post(server.url, b"{}", {}, egress=Egress(max_response_bytes=4 * MiB))
    assert await response.read() == big
    response.release()
    await server.stop()


async def test_the_decoded_size_counts_against_max_response_bytes(client: UpstreamClient) -> None:
    text = b"".join(b'{"index":%d,"embedding":[0.1,0.2]},' % i for i in range(60_000))  # ~2 MiB
    packed = gzip.compress(text)
    assert len(packed) < MiB < len(text)

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(answer(packed, "Content-Encoding: gzip"))
        await w.drain()

    server = await serve(script)
    response = await client.post(server.url, b"{}", {}, egress=Egress(max_response_bytes=MiB))
    with pytest.raises(LimitExceeded):
        await response.read()
    response.release()
    response = await client.post(server.url, b"{}", {}, egress=Egress(max_response_bytes=4 * MiB))
    assert await response.read() == text  # an honest compressed body passes the ratio bound
    response.release()
    await server.stop()


@pytest.mark.parametrize("reading", ["read", "readany"])
async def test_a_gzip_bomb_is_refused_in_bounded_memory(client: UpstreamClient, reading: str) -> None:
    """256 MiB of zeros in ~250 KiB of gzip: the old client inflated each read in one unbounded call and
    buffered it all; now it inflates in steps and stops at the ratio bound, holding a few MiB at most."""
    packed = bomb(256 * MiB)
    server: RawServer

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
        w.write(f"{head}Content-Length: {len(packed)}\r\n\r\n".encode() + packed)
        await w.drain()

    server = await serve(script)
    egress = Egress(provider="bomber", max_response_bytes=1024 * MiB)
    tracemalloc.start()
    try:
        response = await client.post(server.url, b"{}", {}, egress=egress)
        with pytest.raises(LimitExceeded) as caught:
            if reading == "read":
                await response.read()
            else:
                while await response.readany():
                    pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "max_decompression_ratio (100)" in str(caught.value) and "'bomber'" in str(caught.value)
    assert peak < 32 * MiB, peak
    response.release()
    await server.stop()


async def test_inflating_never_takes_one_unbounded_step() -> None:
    packed = bomb(8 * MiB)
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed) + packed
    head = raw.index(b"\r\n\r\n") + 4
    response, _ = parse(raw[:head], [], Egress(max_decompression_ratio=10_000))
    response.feed(raw[head:])  # one read of the whole body, nothing taken meanwhile
    sizes = [len(c) for c in response._chunks]
    assert response._error is None and response.complete
    assert sum(sizes) == 8 * MiB and max(sizes) <= INFLATE_STEP


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_cut_short_is_an_error(encoding: str) -> None:
    """The decoder never reached the end of its stream: the body is not complete, whatever the framing
    says (the old client returned the short body as a success)."""
    whole = (gzip.compress if encoding == "gzip" else zlib.compress)(b'{"choices":[]}' * 500)
    cut = whole[: len(whole) // 2]
    raw = answer(cut, f"Content-Encoding: {encoding}")
    response, _ = parse(raw, [])
    assert isinstance(response._error, ExchangeBroken) and "cut short" in str(response._error)
    with pytest.raises(ExchangeBroken):
        await response.readany()
    ok, body = parse(answer(whole, f"Content-Encoding: {encoding}"), [])
    assert ok._error is None and body == b'{"choices":[]}' * 500
