"""The connection cap in process (proxy.edge.connections): past ``server.max_connections`` the least
recently active idle connection makes room for a new one; with every connection busy, the new one gets a
503 and is closed. The open-files limit is raised to the hard limit, and the cap never passes half of it."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web
from support import AUTH, base_config

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.edge.connections import ClientSite, connection_cap, raise_open_files_limit
from proxy.edge.shutdown import gateway_runner
from proxy.gateway import METRICS
from proxy.observe.metrics import Metrics
from proxy.testing.fake_provider import FakeProvider
from proxy.testing.gateway_process import free_port

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
BOUND = 10.0  # seconds: a liveness bound for what the gateway must do, not a timing claim


@pytest.fixture
async def serve(fake: FakeProvider) -> AsyncIterator[Callable[..., Awaitable[tuple[int, Metrics]]]]:
    """``port, metrics = await serve(**server_settings)``: a gateway listening as ``serve`` listens."""
    runners: list[web.AppRunner] = []

    async def start(**server: object) -> tuple[int, Metrics]:
        config = base_config(fake.url)
        config["server"].update(server)
        settings = parse_settings(config)
        number = free_port()
        app = create_app(settings)
        runner = gateway_runner(app, settings.server)  # as ``serve`` runs it
        await runner.setup()
        runners.append(runner)
        await ClientSite(runner, "127.0.0.1", number, settings.server).start()
        return number, app[METRICS]

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def served(serve: Callable[..., Awaitable[tuple[int, Metrics]]]) -> tuple[int, Metrics]:
    return await serve(max_connections=3, header_timeout="30s", keepalive_timeout="60s")


async def connect(port: int) -> Conn:
    return await asyncio.open_connection("127.0.0.1", port)


async def status(conn: Conn, path: str = "/healthz") -> bytes:
    """One keep-alive GET on ``conn``: the status line of the answer (its body read and dropped)."""
    reader, writer = conn
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def closed(conn: Conn) -> bool:
    try:
        return await asyncio.wait_for(conn[0].read(), BOUND) == b""
    except ConnectionResetError:
        return True


async def test_past_the_cap_the_least_recently_active_idle_connection_makes_room(
    served: tuple[int, Metrics],
) -> None:
    port, _ = served
    first, second, third = [await connect(port) for _ in range(3)]
    for conn in (first, second, third):
        assert await status(conn) == b"HTTP/1.1 200 OK"
    assert await status(first) == b"HTTP/1.1 200 OK"  # now ``second`` is the least recently active
    fourth = await connect(port)
    assert await status(fourth) == b"HTTP/1.1 200 OK"
    assert await closed(second)
    for conn in (first, third, fourth):
        assert await status(conn) == b"HTTP/1.1 200 OK"


async def test_with_every_connection_busy_a_new_one_is_refused_at_once(served: tuple[int, Metrics]) -> None:
    port, metrics = served
    busy = [await connect(port) for _ in range(3)]
    for _, writer in busy:  # a request whose body has not arrived: in progress, not idle
        auth = AUTH["Authorization"]
        writer.write(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
    for _ in range(1000):  # until the gateway has started their handlers
        if metrics.in_flight.value == 3:
            break
        await asyncio.sleep(0.01)
    assert metrics.in_flight.value == 3
    reader, writer = await connect(port)
    answer = await asyncio.wait_for(reader.read(), BOUND)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert f"Content-Length: {len(body)}\r\n".encode() in head + b"\r\n"
    assert b"Retry-After: 1" in head
    error = orjson.loads(body)["error"]
    assert (error["message"], error["code"]) == ("Too many open connections; retry shortly.", "overloaded")
    for _, w in busy:
        w.close()
    writer.close()


async def test_a_head_sent_line_by_line_is_cut_after_the_header_timeout(
    serve: Callable[..., Awaitable[tuple[int, Metrics]]],
) -> None:
    port, _ = await serve(header_timeout="300ms", keepalive_timeout="60s")
    reader, writer = await connect(port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for line in range(int(BOUND / 0.1)):  # a line every 100 ms: each within the timeout, the head not
        if reader.at_eof() or writer.is_closing():
            break
        writer.write(f"X-Line-{line}: a\r\n".encode())
        try:
            data = await asyncio.wait_for(reader.read(65536), 0.1)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        assert data == b"", data  # never an answer: the head never ended
        break
    else:
        raise AssertionError(f"a head still arriving after {BOUND} s was never cut")
    writer.close()


async def test_a_whole_head_then_an_answer_keeps_the_connection(
    serve: Callable[..., Awaitable[tuple[int, Metrics]]],
) -> None:
    port, _ = await serve(header_timeout="300ms", keepalive_timeout="60s")
    conn = await connect(port)
    for _ in range(3):  # the head timer starts with each head's first byte, not with the connection
        assert await status(conn) == b"HTTP/1.1 200 OK"
        await asyncio.sleep(0.4)
    assert await status(conn) == b"HTTP/1.1 200 OK"
    conn[1].close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    serve: Callable[..., Awaitable[tuple[int, Metrics]]],
) -> None:
    port, _ = await serve(header_timeout="60s", keepalive_timeout="300ms")
    conn = await connect(port)
    assert await status(conn) == b"HTTP/1.1 200 OK"
    assert await closed(conn)


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        assert raise_open_files_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_cap_is_the_setting_within_half_the_open_files() -> None:
    assert connection_cap(10_000, 1024) == 512
    assert connection_cap(1000, 20_000) == 1000
