"""The gateway as a real process: acceptance 4 (a slow reader does not grow memory) and 5 (SIGTERM with 50
streams in flight: all complete, all metered, exit 0)."""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from support import AUTH, base_config

from proxy.store.records import RecordQuery
from proxy.store.redis import RedisStore
from proxy.testing.fake_provider import Behaviour, ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    return threaded_fake


def sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def content(text: str) -> bytes:
    return sse({"id": "x", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def ending(completion_tokens: int) -> list[bytes]:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": completion_tokens,
        "total_tokens": 5 + completion_tokens,
    }
    return [
        sse({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        sse({"id": "x", "choices": [], "usage": usage}),
        b"data: [DONE]\n\n",
    ]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_slow_reader_does_not_grow_the_gateway(fake: ThreadedFakeProvider) -> None:
    piece = content("x" * 65_000)
    fake.script("big", Behaviour(200, b"", "text/event-stream", {}, [piece] * 160 + ending(160)))  # ~10 MB
    config = base_config(fake.url, metering={"on_client_disconnect": "cancel"})
    config["server"]["write_timeout"] = 2.0
    with GatewayProcess(config) as gw:
        assert gw.proc is not None
        pid = gw.proc.pid
        body = orjson.dumps(
            {"model": "small", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        )
        for _ in range(3):  # warm-up: imports, pools, first allocations
            req = urllib.request.Request(
                f"{gw.url}/v1/chat/completions", body, {**AUTH, "Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
        before = rss_kib(pid)

        sock = socket.socket()
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )  # a tiny window: the reader is the bottleneck
        sock.connect(("127.0.0.1", gw.port))
        big = orjson.dumps({"model": "big", "messages": [{"role": "user", "content": "hi"}], "stream": True})
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {AUTH['Authorization']}\r\nContent-Length: {len(big)}\r\n\r\n".encode()
            + big
        )
        peak, received = before, 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # ~10 KB/s, against 10 MB the provider would send at once
            received += len(sock.recv(1024))
            peak = max(peak, rss_kib(pid))
            time.sleep(0.1)
        # then it stops reading: after server.write_timeout the gateway closes the stream and meters it
        time.sleep(2.5)
        peak = max(peak, rss_kib(pid))
        sock.close()
        print(
            f"RSS before {before} KiB, peak {peak} KiB (+{peak - before} KiB); client read {received} bytes"
        )
        assert received > 0
        assert peak - before < 5 * 1024, f"the gateway grew by {peak - before} KiB"


def stalled_reader(port: int, body: bytes) -> socket.socket:
    """A client that asks for a stream, reads the start of the answer, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: buffers fill at once
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: {AUTH['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sock.settimeout(10)
    assert sock.recv(1024).startswith(b"HTTP/1.1 200"), "the stream started"
    return sock


def chat_status(url: str) -> int:
    body = orjson.dumps({"model": "small", "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(
        f"{url}/v1/chat/completions", body, {**AUTH, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def closed_by_the_gateway(sock: socket.socket) -> bool:
    """Read what is left: the gateway reset the connection, or ended it before the stream's end."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        return True
    return not received.rstrip().endswith(b"data: [DONE]")


def test_stalled_readers_are_closed_and_free_their_slots(fake: ThreadedFakeProvider) -> None:
    """server.write_timeout: five clients that stop reading a 10 MB stream hold all five slots of
    max_concurrency: 5 until the write timeout closes their streams; then a sixth client is served."""
    piece = content("x" * 65_000)
    fake.script("huge", Behaviour(200, b"", "text/event-stream", {}, [piece] * 160 + ending(160)))
    config = base_config(fake.url)
    config["server"].update({"max_concurrency": 5, "write_timeout": 1.0})
    with GatewayProcess(config) as gw:
        huge = orjson.dumps(
            {"model": "huge", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        )
        readers = [stalled_reader(gw.port, huge) for _ in range(5)]
        try:
            assert chat_status(gw.url) == 503, "the five stalled streams hold every slot"
            for _ in range(100):  # a liveness bound of ~20 s on a loaded machine, not a timing claim
                status = chat_status(gw.url)
                if status != 503:
                    break
                time.sleep(0.2)
            assert status == 200, "a sixth client is served once the stalled streams are closed"
            assert all(closed_by_the_gateway(sock) for sock in readers), "each stalled stream was cut"
        finally:
            for sock in readers:
                sock.close()


def test_sigterm_finishes_50_streams_meters_them_and_exits_0(
    fake: ThreadedFakeProvider, redis_server: RedisServer
) -> None:
    fake.script(
        "slow",
        Behaviour(200, b"", "text/event-stream", {}, [content("w")] * 20 + ending(20), chunk_delay=0.1),
    )
    prefix = f"egwtest-{uuid.uuid4().hex[:10]}"
    config = base_config(
        fake.url, store={"backend": "redis", "url": redis_server.url, "prefix": prefix, "timeout": 2.0}
    )
    config["server"].update({"drain_timeout": 10.0, "shutdown_delay": 0.5})
    config["secrets"] = {"key_secret": "k" * 40}
    gw = GatewayProcess(config).start()
    assert gw.proc is not None
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ready_during_drain: list[int] = []

    async def stream(session: aiohttp.ClientSession, started: asyncio.Queue[None]) -> str:
        async with session.post(f"{gw.url}/v1/chat/completions", json=body, headers=AUTH) as resp:
            assert resp.status == 200, await resp.text()
            first = await resp.content.readany()
            await started.put(None)
            return (first + await resp.read()).decode()

    async def scenario() -> list[str]:
        started: asyncio.Queue[None] = asyncio.Queue()
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(stream(session, started)) for _ in range(50)]
            for _ in range(50):
                await asyncio.wait_for(started.get(), 10)
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            # Readiness goes off while the streams still run (polled: a busy machine may take a moment
            # to deliver the signal; the streams last ~2 s more).
            for _ in range(20):
                await asyncio.sleep(0.1)
                status = await asyncio.to_thread(readyz, gw.url)
                if status == 503:
                    ready_during_drain.append(status)
                    break
            assert not all(t.done() for t in tasks), "the streams ended before readiness went off"
            return await asyncio.gather(*tasks)

    signalled = time.monotonic()
    bodies = asyncio.run(scenario())
    code = gw.proc.wait(15)
    elapsed = time.monotonic() - signalled
    print(f"50 streams finished and the process exited {code} {elapsed:.2f} s after SIGTERM")
    try:
        assert code == 0, gw.log()[-2000:]
        assert ready_during_drain == [503], "readiness goes off first"
        assert all(b.rstrip().endswith("data: [DONE]") for b in bodies), "every stream ran to its end"
        assert elapsed < 10.0
        records = asyncio.run(ledger(redis_server.url, prefix))
        assert len(records) == 50 and {r["outcome"] for r in records} == {"completed"}
        assert all(r["completion_tokens"] == 20 and not r["estimated"] for r in records)
    finally:
        gw.stop()


def test_sigterm_cuts_streams_still_running_after_drain_timeout(fake: ThreadedFakeProvider) -> None:
    """server.drain_timeout: a stream that would take ~10 s more is cut when a 0.5 s drain ends, and the
    process exits; the default drain (30 s) would have let it finish."""
    fake.script(
        "long",
        Behaviour(200, b"", "text/event-stream", {}, [content("w")] * 50 + ending(50), chunk_delay=0.2),
    )
    config = base_config(fake.url)
    config["server"]["drain_timeout"] = 0.5
    gw = GatewayProcess(config).start()
    assert gw.proc is not None
    try:
        body = orjson.dumps(
            {"model": "long", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        )
        req = urllib.request.Request(
            f"{gw.url}/v1/chat/completions", body, {**AUTH, "Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            received = resp.read1(1024)  # the stream is running
            gw.proc.send_signal(signal.SIGTERM)
            try:
                while chunk := resp.read1(65536):
                    received += chunk
            except (OSError, http.client.HTTPException):
                pass  # cut mid-body
        assert gw.proc.wait(15) == 0
        assert b"data: [DONE]" not in received, "the stream was cut when the drain ended"
    finally:
        gw.stop()


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def ledger(url: str, prefix: str) -> list[dict[str, Any]]:
    store = RedisStore(url, timeout=2.0, prefix=prefix)
    try:
        page = await store.records(RecordQuery(key="test", limit=1000))
        return [
            {"outcome": r.outcome.value, "completion_tokens": r.completion_tokens, "estimated": r.estimated}
            for r in page.data
        ]
    finally:
        await store.close()
