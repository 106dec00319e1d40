"""The load generator: a fixed number of keep-alive HTTP/1.1 connections, each sending the same request
back to back for a fixed time, recording per response when the first and the last body byte arrived.

It speaks HTTP/1.1 itself over asyncio protocols (on uvloop) instead of going through aiohttp's client:
it shares a core with the upstream, and the less CPU it spends per request, the further it stays from
being the bottleneck when it measures the pass-through. Times are taken in ``data_received``, so a
stream's chunk arrival times are what the socket delivered, not what a client library re-buffered.

    python -m bench.load http://127.0.0.1:8080/v1/chat/completions --concurrency 32 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import orjson

CHAT_PATH = "/v1/chat/completions"


def chat_request(
    host: str, port: int, key: str | None, *, model: str = "bench-model", stream: bool = False
) -> bytes:
    """The raw bytes of one chat request; the same prompt for every target."""
    obj: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "max_tokens": 16,
    }
    if stream:
        obj["stream"] = True
        obj["stream_options"] = {"include_usage": True}  # so every target relays the same events
    body = orjson.dumps(obj)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(slots=True)
class Sample:
    status: int
    ttfb: float  # seconds from the request's write to the first body byte
    ttlb: float  # ... to the end of the response
    arrivals: list[float]  # seconds from the write to each read that carried body bytes
    body: bytes


class ProtocolError(Exception):
    pass


class _Client(asyncio.Protocol):
    """One connection, one request at a time; parses Content-Length and chunked responses."""

    def __init__(self, keep_body: bool) -> None:
        self.keep_body = keep_body
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Sample] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-response"))
        if not self.closed.done():
            self.closed.set_result(None)

    def request(self, data: bytes) -> asyncio.Future[Sample]:
        if self.transport is None:
            raise ConnectionError("connection closed")
        self.buf = bytearray()
        self.status = 0
        self.head_done = False
        self.length: int | None = None
        self.chunked = False
        self.chunk_left = 0  # payload bytes left in the current chunk (chunked encoding)
        self.body = bytearray()
        self.arrivals: list[float] = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent = time.perf_counter()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.waiter is None or self.waiter.done():
            return
        self.buf += data
        try:
            if not self.head_done and not self._parse_head():
                return
            got, done = self._parse_body()
        except (ProtocolError, ValueError) as exc:
            self.waiter.set_exception(ProtocolError(str(exc)))
            if self.transport is not None:
                self.transport.close()
            return
        if got:
            self.arrivals.append(now - self.sent)
        if done:
            first = self.arrivals[0] if self.arrivals else now - self.sent
            body = bytes(self.body) if self.keep_body else b""
            self.waiter.set_result(Sample(self.status, first, now - self.sent, self.arrivals, body))

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self.buf[:end]).split(b"\r\n")
        del self.buf[: end + 4]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
        if not self.chunked and self.length is None:
            raise ProtocolError("response without Content-Length or chunked encoding")
        self.head_done = True
        return True

    def _parse_body(self) -> tuple[bool, bool]:
        """Consume buffered body bytes: (some payload arrived, the response is complete)."""
        before = len(self.body)
        if not self.chunked:
            assert self.length is not None
            take = self.length - len(self.body)
            self.body += self.buf[:take]
            del self.buf[:take]
            return len(self.body) > before, len(self.body) >= self.length
        while True:
            if self.chunk_left:
                piece = self.buf[: self.chunk_left]
                self.body += piece
                del self.buf[: len(piece)]
                self.chunk_left -= len(piece)
                if self.chunk_left:
                    return len(self.body) > before, False
                continue
            line_end = self.buf.find(b"\r\n")
            if line_end < 0:
                return len(self.body) > before, False
            if line_end == 0:  # the CRLF that closes a chunk's payload
                del self.buf[:2]
                continue
            size = int(bytes(self.buf[:line_end]).split(b";")[0], 16)
            if size == 0:
                if self.buf.find(b"\r\n\r\n", line_end) < 0:
                    return len(self.body) > before, False
                del self.buf[:]
                return len(self.body) > before, True
            del self.buf[: line_end + 2]
            self.chunk_left = size


async def fetch(host: str, port: int, request: bytes, limit: float = 5.0) -> Sample:
    """One request on a fresh connection, body kept (readiness probes and the sanity checks)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(limit):
        transport, client = await loop.create_connection(lambda: _Client(keep_body=True), host, port)
        try:
            return await client.request(request)
        finally:
            transport.close()


def get_request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


@dataclass
class LoadResult:
    concurrency: int
    wall: float  # seconds of measured load (after the warm-up)
    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200]

    @property
    def failures(self) -> int:
        return sum(self.errors.values()) + sum(1 for s in self.samples if s.status != 200)

    def rps(self) -> float:
        return len(self.ok) / self.wall if self.wall > 0 else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def run_load(
    host: str,
    port: int,
    request: bytes,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
    keep_body: bool = False,
    stagger: float = 0.0,
) -> LoadResult:
    """Drive ``concurrency`` connections for ``warmup + duration`` seconds; record only after the warm-up.

    ``stagger`` spreads the connections' first requests over that many seconds: requests of equal length
    started together stay in lockstep and would measure each other's queueing instead of the server.
    """
    loop = asyncio.get_running_loop()
    result = LoadResult(concurrency, duration)
    start = loop.time()
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def worker(i: int) -> None:
        await asyncio.sleep(stagger * i / concurrency)
        client: _Client | None = None
        while loop.time() < stop_at:
            try:
                if client is None or client.transport is None:
                    _, client = await loop.create_connection(lambda: _Client(keep_body), host, port)
                sample = await client.request(request)
            except (OSError, ProtocolError) as exc:
                if loop.time() >= measure_from:
                    name = type(exc).__name__
                    result.errors[name] = result.errors.get(name, 0) + 1
                client = None
                await asyncio.sleep(0.01)  # don't spin on a refused connection
                continue
            if loop.time() >= measure_from:
                result.samples.append(sample)
        if client is not None and client.transport is not None:
            client.transport.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    # Requests in flight at the deadline finish late; count the time they took.
    result.wall = max(duration, loop.time() - measure_from)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Drive a chat endpoint with fixed concurrency.")
    parser.add_argument("url", help="e.g. http://127.0.0.1:8080/v1/chat/completions (host and port only)")
    parser.add_argument("--key", help="a virtual key for the gateway")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    w = args.warmup
    request = chat_request(host, port, args.key, model=args.model, stream=args.stream)
    import uvloop

    res = uvloop.run(
        run_load(host, port, request, concurrency=args.concurrency, duration=args.duration, warmup=w)
    )
    ok = res.ok
    ttfb = [s.ttfb * 1000 for s in ok]
    ttlb = [s.ttlb * 1000 for s in ok]
    print(
        f"{len(ok)} ok, {res.failures} failed, {res.rps():.0f} req/s; "
        f"first byte p50 {percentile(ttfb, 50):.2f} ms p99 {percentile(ttfb, 99):.2f} ms; "
        f"last byte p50 {percentile(ttlb, 50):.2f} ms p99 {percentile(ttlb, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
