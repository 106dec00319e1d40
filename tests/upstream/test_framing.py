"""RFC 9112 framing as the provider client enforces it (llhttp and proxy/upstream/response.py): what is
refused, what closes the connection after the answer, and that another request still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from upstream_support import RawServer, answer, chunked, parse, read_request, serve

from proxy.upstream.client import ExchangeBroken, LimitExceeded, UpstreamClient
from proxy.upstream.egress import Egress


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    c = UpstreamClient(environ={})
    yield c
    await c.close()


async def test_chunked_with_content_length_is_read_as_chunked_then_closed() -> None:
    """RFC 9112 6.3: Transfer-Encoding wins over Content-Length, and the connection is not reused."""
    raw = chunked(b"data: 1\n\n").replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n", 1)
    response, body = parse(raw, [])
    assert response._error is None and response.complete
    assert body == b"data: 1\n\n"
    assert not response._keep_alive


@pytest.mark.parametrize("coding", ["chunked, gzip", "gzip", "gzip, chunked", "identity"])
async def test_transfer_codings_other_than_chunked_are_refused(coding: str) -> None:
    """Only the final coding decides chunked: ``chunked, gzip`` is not a chunked body, and this client
    asked for no transfer coding (no TE header), so it cannot decode one."""
    raw = chunked(b"data: 1\n\n").replace(b"chunked", coding.encode(), 1)
    response, _ = parse(raw, [])
    assert isinstance(response._error, ExchangeBroken)
    assert "transfer-encoding" in str(response._error)


@pytest.mark.parametrize(
    "length",
    [b"\xb9", b"\xb2", "\u00b9".encode(), "\u0661".encode(), b"+3", b"-1", b"3 3", b"0x3", b"9" * 23],
    ids=repr,
)
async def test_content_length_is_ascii_digits_only(length: bytes) -> None:
    """Read as latin-1, the byte 0xB9 is '¹', which ``str.isdigit()`` accepts and ``int()`` then refused
    with an exception inside data_received; now the parser refuses it, and every other non-digit, cleanly."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\nabc"
    response, _ = parse(raw, [])
    assert isinstance(response._error, ExchangeBroken)
    with pytest.raises(ExchangeBroken):
        await response.readany()


async def test_two_different_content_lengths_are_refused() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    response, _ = parse(raw, [])
    assert isinstance(response._error, ExchangeBroken)


@pytest.mark.parametrize("size", [b" 9", b"9 ", b"+9", b"0x9", b"-9", b"9\t", b"", b"1" * 20], ids=repr)
async def test_bad_chunk_sizes_are_errors(size: bytes) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\ndata: 1\n\n\r\n0\r\n\r\n"
    response, _ = parse(raw, [])
    assert isinstance(response._error, ExchangeBroken), size


async def test_several_1xx_answers_are_skipped() -> None:
    informational = b"HTTP/1.1 100 Continue\r\n\r\n" + b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    raw = informational * 2 + answer(b"ok")
    for cut in range(1, len(raw)):
        response, body = parse(raw, [cut])
        assert response.status == 200 and body == b"ok" and response.complete, cut
        assert "link" not in response.headers  # a 1xx answer's headers are not the answer's


async def test_a_flood_of_100_continue_is_cut_off() -> None:
    """Each 1xx used to copy the rest of the buffer (quadratic) and the flood ran until the first-byte
    timeout; now it is parsed once and refused past the cap."""
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" * 50_000 + answer(b"ok")
    response, _ = parse(raw, [], Egress(provider="flooded", max_informational=10, max_head_bytes=10**9))
    assert isinstance(response._error, LimitExceeded)
    assert "max_informational (10)" in str(response._error) and "'flooded'" in str(response._error)
    assert response._informational == 11  # parsing stopped at the cap


async def test_the_head_size_is_bounded_1xx_answers_included() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" * 8 + answer(b"ok", "X-Big: " + "a" * 300)
    response, _ = parse(raw, [40, 120, 300], Egress(provider="p", max_head_bytes=256))
    assert isinstance(response._error, LimitExceeded) and "max_head_bytes (256)" in str(response._error)
    response, body = parse(raw, [40, 120, 300], Egress(provider="p", max_head_bytes=1024))
    assert body == b"ok"


@pytest.mark.parametrize("where", ["a header", "the status line"])
async def test_a_head_past_the_bound_is_refused_when_it_comes_whole_in_one_read(where: str) -> None:
    """The bound held only while a head was still unfinished after a read: a complete 3 KB head in one
    read passed a 2 KB bound."""
    if where == "a header":
        raw = answer(b"ok", "X-Big: " + "a" * 3000)
    else:
        raw = b"HTTP/1.1 200 " + b"O" * 3000 + b"\r\nContent-Length: 2\r\n\r\nok"
    response, body = parse(raw, [], Egress(provider="p", max_head_bytes=2048))
    assert isinstance(response._error, LimitExceeded) and "max_head_bytes (2048)" in str(response._error)
    assert body == b""
    response, body = parse(raw, [], Egress(provider="p", max_head_bytes=4096))
    assert body == b"ok"


async def test_switching_protocols_is_refused() -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    response, _ = parse(raw + answer(b"ok"), [])
    assert isinstance(response._error, ExchangeBroken) and response.status != 200


async def test_header_values_are_trimmed_and_repeats_joined() -> None:
    response, _ = parse(answer(b"ok", "X-A: 1  ", "x-a:2", "X-B:\t b \t"), [])
    assert response.headers["x-a"] == "1, 2" and response.headers["x-b"] == "b"


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra", b"\x00junk"])
async def test_an_answer_glued_behind_the_first_closes_the_connection(
    client: UpstreamClient, garbage: bytes
) -> None:
    server: RawServer

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(r, server)
            w.write(answer(f"answer {n}".encode()) + (garbage if n == 1 else b""))
            await w.drain()

    server = await serve(script)
    first = await client.post(server.url, b"{}", {})
    assert await first.read() == b"answer 1"
    first.release()
    assert client.idle_connections() == 0
    second = await client.post(server.url, b"{}", {})
    assert await second.read() == b"answer 2"  # its own answer, on a new connection
    second.release()
    assert server.connections == 2
    await server.stop()


async def test_an_unsolicited_answer_to_an_idle_connection_retires_it(client: UpstreamClient) -> None:
    server: RawServer
    spoke = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r, server)
        w.write(answer(f"answer {n}".encode()))
        await w.drain()
        if n == 1:
            await asyncio.sleep(0.05)
            w.write(answer(b"nobody asked"))  # while the connection sits in the pool
            await w.drain()
            spoke.set()
        while True:
            await read_request(r, server)
            w.write(answer(b"late"))
            await w.drain()

    server = await serve(script)
    first = await client.post(server.url, b"{}", {})
    assert await first.read() == b"answer 1"
    first.release()
    assert client.idle_connections() == 1
    await spoke.wait()
    for _ in range(100):
        if client.idle_connections() == 0:
            break
        await asyncio.sleep(0.01)
    second = await client.post(server.url, b"{}", {})
    assert await second.read() == b"answer 2"  # never "nobody asked"
    second.release()
    assert server.connections == 2
    await server.stop()
