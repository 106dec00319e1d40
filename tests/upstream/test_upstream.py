"""The data plane's HTTP client (proxy.upstream.client) against scripted raw TCP servers: framing, keep-alive,
the keep-alive race, timeouts, flow control and what must never be sent."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from upstream_support import RawServer, answer, chunked, parse, read_request, serve

from proxy.upstream.client import (
    HIGH_WATER,
    ConnectFailed,
    ExchangeBroken,
    UpstreamClient,
    origin,
)


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    c = UpstreamClient()
    yield c
    await c.close()


async def test_keep_alive_reuses_one_connection(client: UpstreamClient) -> None:
    server: RawServer

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(r, server)
            w.write(answer(b'{"ok":true}'))
            await w.drain()

    server = await serve(script)
    for _ in range(3):
        response = await client.post(server.url, b'{"a":1}', {"Content-Type": "application/json"})
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert await response.read() == b'{"ok":true}'
        response.release()
    assert server.connections == 1
    assert client.idle_connections() == 1
    sent = server.requests[0]
    assert sent.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 7\r\n" in sent and sent.endswith(b'\r\n\r\n{"a":1}')
    assert b"\r\nHost: 127.0.0.1:" in sent
    await server.stop()


async def test_a_body_not_all_there_closes_the_connection(client: UpstreamClient) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(answer(b"x" * 10)[:-3])
        await asyncio.sleep(1)

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    response.release()  # the body has not all arrived: the connection cannot be reused
    assert client.idle_connections() == 0
    await server.stop()


@pytest.mark.parametrize(
    "extra",
    [("Connection: close",), ()],
    ids=["connection-close", "close-delimited"],
)
async def test_connections_the_server_ends_are_not_reused(client: UpstreamClient, extra: tuple[str]) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        if extra:
            w.write(answer(b"done", *extra))
        else:  # no length, no chunking: the body ends with the connection
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
            await w.drain()
            await asyncio.sleep(0.01)
            w.write(b"it")

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    assert await response.read() == (b"done" if extra else b"all of it")
    assert response.complete
    response.release()
    assert client.idle_connections() == 0
    await server.stop()


async def test_chunked_bodies_survive_every_split() -> None:
    events = [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n' * 3, b"data: [DONE]\n\n"]
    raw = chunked(*events)
    raw = raw.replace(b"\r\n\r\n", b"\r\nX-Extra: 1\r\n\r\n", 1)
    raw = raw.replace(b"0\r\n\r\n", b"0;ext=1\r\nTrailer-Field: y\r\n\r\n")
    for cut in range(1, len(raw)):
        response, body = parse(raw, [cut])
        assert response._error is None, cut
        assert body == b"".join(events), cut
        assert response.complete and response._keep_alive, cut
    response, body = parse(raw, list(range(1, len(raw))))  # one byte at a time
    assert body == b"".join(events) and response.complete


async def test_length_framed_bodies_survive_every_split() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'{"id":"x","usage":{"prompt_tokens":3}}')
    for cut in range(1, len(raw)):
        response, body = parse(raw, [cut])
        assert response.status == 200 and body.endswith(b"3}}") and response.complete, cut


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n bad-header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx",
    ],
    ids=["bad-size", "no-crlf-after-data", "bad-length", "not-http", "bad-header", "brotli"],
)
async def test_broken_http_is_an_error_not_a_guess(raw: bytes) -> None:
    response, _ = parse(raw, [])
    assert isinstance(response._error, ExchangeBroken)
    with pytest.raises(ExchangeBroken):
        await response.readany()


async def test_bytes_after_the_answer_stop_reuse() -> None:
    response, body = parse(answer(b"ok") + b"HTTP/1.1 200 OK\r\n", [])
    assert body == b"ok" and response.complete and not response._keep_alive


async def test_gzip_bodies_are_decoded(client: UpstreamClient) -> None:
    payload = b'{"choices":[{"text":"' + b"z" * 5000 + b'"}]}'

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(answer(gzip.compress(payload), "Content-Encoding: gzip"))
        await w.drain()

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    assert await response.read() == payload
    response.release()
    await server.stop()


async def test_a_reused_connection_the_server_closed_is_retried_once(client: UpstreamClient) -> None:
    """The keep-alive race: the server drops an idle connection as our request goes out on it."""

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        if n == 1:
            w.write(answer(b"first"))
            await w.drain()
            await read_request(r)  # the second request on this connection: closed without an answer
            return
        w.write(answer(b"second"))
        await w.drain()
        await asyncio.sleep(1)

    server = await serve(script)
    first = await client.post(server.url, b"{}", {})
    assert await first.read() == b"first"
    first.release()
    second = await client.post(server.url, b"{}", {})
    assert await second.read() == b"second"
    second.release()
    assert server.connections == 2
    await server.stop()


async def test_a_new_connection_closed_without_answer_fails(client: UpstreamClient) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)

    server = await serve(script)
    with pytest.raises(ExchangeBroken):
        await client.post(server.url, b"{}", {})
    assert server.connections == 1  # not retried: the request may have reached the server's handler
    await server.stop()


async def test_cut_mid_body_delivers_what_came_then_fails(client: UpstreamClient) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        full = chunked(b"data: 1\n\n", b"data: 2\n\n")
        w.write(full[: full.index(b"data: 2") + 3])
        await w.drain()

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    received = b""
    with pytest.raises(ExchangeBroken):
        while chunk := await response.readany():
            received += chunk
    assert received == b"data: 1\n\ndat"
    response.release()
    assert client.idle_connections() == 0
    await server.stop()


async def test_timeouts(client: UpstreamClient) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await w.drain()
        await asyncio.sleep(5)

    server = await serve(script)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):  # headers not by the deadline
        await client.post(server.url, b"{}", {}, headers_by=loop.time() - 1)
    response = await client.post(server.url, b"{}", {}, idle=0.05)
    assert await response.readany() == b"hello"
    started = loop.time()
    with pytest.raises(TimeoutError):  # then silence: the idle timeout
        await response.readany()
    assert loop.time() - started < 2
    response.release()
    response = await client.post(server.url, b"{}", {}, idle=10, total=0.1)
    await response.readany()
    with pytest.raises(TimeoutError):  # the overall deadline, before the idle one
        await response.readany()
    response.release()
    response = await client.post(server.url, b"{}", {})
    await response.readany()
    with pytest.raises(TimeoutError):  # a per-read deadline
        await response.readany(by=loop.time() + 0.05)
    response.release()
    assert client.idle_connections() == 0
    await server.stop()


async def test_connect_failures() -> None:
    client = UpstreamClient()
    server = await serve(lambda r, w, n: asyncio.sleep(0))
    url = server.url
    await server.stop()
    with pytest.raises(ConnectFailed):
        await client.post(url, b"{}", {})
    await client.close()
    with pytest.raises(ConnectFailed):
        await client.post(url, b"{}", {})


async def test_headers_that_would_split_the_request_are_refused(client: UpstreamClient) -> None:
    server = await serve(lambda r, w, n: asyncio.sleep(0))
    for headers in ({"Authorization": "Bearer k\r\nX-Evil: 1"}, {"X-A\nB": "v"}):
        with pytest.raises(ValueError):
            await client.post(server.url, b"{}", headers)
    assert server.connections == 0
    await server.stop()


async def test_framing_headers_are_the_clients_own(client: UpstreamClient) -> None:
    server: RawServer

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r, server)
        w.write(answer(b"ok"))
        await w.drain()

    server = await serve(script)
    headers = {"Content-Length": "999", "Host": "evil.example", "User-Agent": "app/1", "X-Title": "t"}
    headers["Accept-Encoding"] = "br"  # not one this client decodes: its own header is sent instead
    response = await client.post(server.url, b"{}", headers)
    await response.read()
    response.release()
    sent = server.requests[0].lower()
    assert sent.count(b"content-length:") == 1 and b"content-length: 2\r\n" in sent
    assert b"evil.example" not in sent and b"user-agent: app/1\r\n" in sent and b"x-title: t\r\n" in sent
    assert sent.count(b"accept-encoding:") == 1 and b"accept-encoding: gzip, deflate\r\n" in sent
    await server.stop()


async def test_a_slow_reader_pauses_the_socket(client: UpstreamClient) -> None:
    size = 4 * HIGH_WATER

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(answer(b"y" * size))
        await w.drain()

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    for _ in range(50):
        await asyncio.sleep(0.01)
        if response._paused:
            break
    assert response._paused and response._buffered <= 2 * HIGH_WATER
    assert len(await response.read()) == size
    await server.stop()


def test_origins_are_parsed_once() -> None:
    t = origin("https://api.example.com/v1/chat/completions?x=1")
    assert (t.host, t.port, t.tls, t.path, t.host_header) == (
        "api.example.com",
        443,
        True,
        "/v1/chat/completions?x=1",
        "api.example.com",
    )
    assert origin("http://[::1]:8080/v1").host_header == "[::1]:8080"
    assert origin("https://api.example.com/v1/chat/completions?x=1") is t
    with pytest.raises(ValueError):
        origin("ftp://example.com/")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 'localhost' and its key, made with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_tls_checks_the_certificate_and_the_name(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await read_request(r)
            w.write(answer(b"secret"))
            await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(script, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    client = UpstreamClient(trusting)
    response = await client.post(f"https://localhost:{port}/v1/x", b"{}", {})
    assert response.status == 200 and await response.read() == b"secret"
    response.release()
    with pytest.raises(ConnectFailed):  # the certificate names localhost, not 127.0.0.1
        await client.post(f"https://127.0.0.1:{port}/v1/x", b"{}", {})
    await client.close()
    default = UpstreamClient()  # the system's CA store does not know this certificate
    with pytest.raises(ConnectFailed):
        await default.post(f"https://localhost:{port}/v1/x", b"{}", {})
    await default.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("terminator_comes", [True, False])
async def test_a_finished_stream_waits_for_its_last_chunk(
    client: UpstreamClient, monkeypatch: pytest.MonkeyPatch, terminator_comes: bool
) -> None:
    """After [DONE] the relay releases at once; the chunked terminator arrives a moment later and the
    connection is reused, or it never does and the connection is closed after LINGER."""
    monkeypatch.setattr("proxy.upstream.response.LINGER", 0.2)
    release_now = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        full = chunked(b"data: x\n\n", b"data: [DONE]\n\n")
        w.write(full[: -len(b"0\r\n\r\n")])
        await w.drain()
        await release_now.wait()
        if terminator_comes:
            await asyncio.sleep(0.02)
            w.write(b"0\r\n\r\n")
            await w.drain()
        await asyncio.sleep(1)

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    seen = b""
    while b"[DONE]" not in seen:
        seen += await response.readany()
    response.release(rest_expected=True)
    release_now.set()
    assert client.idle_connections() == 0  # not before the terminator
    await asyncio.sleep(0.1)
    assert client.idle_connections() == (1 if terminator_comes else 0)
    await asyncio.sleep(0.25)
    assert client.idle_connections() == (1 if terminator_comes else 0)
    if not terminator_comes:
        assert response._lingering is None
    await server.stop()


async def test_an_abandoned_answer_is_closed_not_drained(client: UpstreamClient) -> None:
    """A client gone mid-stream: closing the connection is what stops the provider generating."""
    closed = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await w.drain()
        if not await r.read(1):  # EOF: the gateway closed the connection
            closed.set()

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    await response.readany()
    response.release()
    await asyncio.wait_for(closed.wait(), 2)
    await server.stop()


async def test_large_bodies_and_idle_expiry(client: UpstreamClient, monkeypatch: pytest.MonkeyPatch) -> None:
    server: RawServer

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        while True:
            request = await read_request(r, server)
            w.write(answer(str(len(request.partition(b"\r\n\r\n")[2])).encode()))
            await w.drain()

    server = await serve(script)
    big = b"x" * 300_000  # past the one-send size: head and body go out without a copy
    response = await client.post(server.url, big, {})
    assert await response.read() == b"300000"
    response.release()
    monkeypatch.setattr("proxy.upstream.client.KEEPALIVE", 0.05)
    await asyncio.sleep(0.1)
    response = await client.post(server.url, b"{}", {})  # the idle connection expired: a new one
    assert await response.read() == b"2"
    response.release()
    assert server.connections == 2
    await server.stop()


async def test_a_compressed_stream_is_decoded_as_it_arrives(client: UpstreamClient) -> None:
    """A server (or a CDN in front of it) that gzips an event stream with a flush per event: each
    event is readable as soon as it arrives, not at the end."""
    second = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        packer = zlib.compressobj(wbits=31)
        for event in (b"data: one\n\n", b"data: two\n\n"):
            piece = packer.compress(event) + packer.flush(zlib.Z_SYNC_FLUSH)
            w.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await w.drain()
            await second.wait()
        tail = packer.flush()
        w.write(f"{len(tail):x}\r\n".encode() + tail + b"\r\n0\r\n\r\n")
        await w.drain()

    server = await serve(script)
    response = await client.post(server.url, b"{}", {})
    assert await response.readany() == b"data: one\n\n"
    second.set()
    assert await response.read() == b"data: two\n\n"
    response.release()
    assert client.idle_connections() == 1
    await server.stop()
