"""The benchmark's fake upstream: a raw asyncio HTTP/1.1 server on uvloop, as cheap as we can make it, so
that it shares a core with the load generator without being what limits the measured throughput.

    POST /v1/chat/completions  non-stream: a fixed small chat.completion with usage (Content-Length)
                               stream:     N content chunks, a finish chunk, a usage chunk, [DONE]
                                           (chunked encoding, one HTTP chunk and one write per event)
    GET  anything              200 {"ok":true} (readiness probe)

The model ``bench-drip`` streams with ``--drip-ms`` between events (every other model at full speed): the
no-buffering check compares the event spacing the client sees with this one.

Only what the three clients send is parsed: a request line, headers and a Content-Length body; pipelined
requests are answered in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import cast

import orjson

DRIP_MODEL = b"bench-drip"
_MESSAGE = {"role": "assistant", "content": "Hello from the bench."}
_USAGE = {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22}


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode()
    return head + b"Content-Type: " + content_type + b"\r\n\r\n" + body


def completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "bench-model",
            "choices": [{"index": 0, "message": _MESSAGE, "finish_reason": "stop"}],
            "usage": _USAGE,
        }
    )


def stream_events(chunks: int) -> list[bytes]:
    """The SSE events of one stream, each framed as one HTTP/1.1 chunk."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000}
    base["model"] = "bench-model"
    objs: list[dict[str, object]] = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": "tok"} if i == 0 else {"content": f" tok{i}"}
        objs.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    objs.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    objs.append({**base, "choices": [], "usage": _USAGE})
    events = [b"data: " + orjson.dumps(o) + b"\n\n" for o in objs] + [b"data: [DONE]\n\n"]
    return [f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events]


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"
COMPLETION = _response("200 OK", b"application/json", completion_body())
OK = _response("200 OK", b"application/json", b'{"ok":true}')
BAD = _response("400 Bad Request", b"application/json", b'{"error":{"message":"bad bench request"}}')


class Upstream(asyncio.Protocol):
    def __init__(self, events: list[bytes], drip: float) -> None:
        self.events, self.drip = events, drip
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.dripping = False  # a slow stream is being written: hold further requests until it ends

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.dripping:
            self._serve_buffered()

    def _serve_buffered(self) -> None:
        while self.transport is not None and not self.dripping:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else None])
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if not head.startswith(b"post "):
            self.transport.write(OK)
            return
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.transport.write(BAD)
            return
        if not isinstance(obj, dict) or obj.get("stream") is not True:
            self.transport.write(COMPLETION)
        elif obj.get("model") == DRIP_MODEL.decode() and self.drip > 0:
            self.dripping = True
            asyncio.get_running_loop().create_task(self._drip())
        else:
            write = self.transport.write
            write(STREAM_HEAD)
            for event in self.events:  # one write per event, as a token-by-token provider does
                write(event)
            write(LAST_CHUNK)

    async def _drip(self) -> None:
        try:
            for i, event in enumerate(self.events):
                if i:
                    await asyncio.sleep(self.drip)
                if self.transport is None:
                    return
                self.transport.write(STREAM_HEAD + event if i == 0 else event)
            if self.transport is not None:
                self.transport.write(LAST_CHUNK)
        finally:
            self.dripping = False
        self._serve_buffered()


async def serve(host: str, port: int, chunks: int, drip: float) -> None:
    events = stream_events(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(events, drip), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's fake OpenAI-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=10, help="content events per stream")
    parser.add_argument("--drip-ms", type=float, default=20.0, help="delay between events for bench-drip")
    args = parser.parse_args()
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, args.chunks, args.drip_ms / 1000))


if __name__ == "__main__":
    main()
