"""A provider that attacks the gateway: a raw asyncio TCP server whose answers are scripted byte by byte.

It speaks just enough HTTP/1.1 to read the gateway's requests (head, then a ``Content-Length`` body) and
picks the answer by the requested model: a model with a script (``upstream.scripts[model]``) gets the
script, which writes whatever it likes on the raw connection; ``ok-<anything>`` gets an honest answer
whose content is the model name (JSON, or an SSE stream when asked), so that a test can tell whose answer
a client got. Each connection's requests are recorded in order (``connections``): a connection the gateway
should have closed after an attack must carry no further request.

Attack bytes are produced lazily and written with back-pressure; writing stops as soon as the gateway
closes the connection, so a 1 GiB attack costs only what the gateway actually reads.

The server runs on its own event loop in a background thread: the gateway under test is a real process,
and the test's own code (an HTTP client, RSS sampling) stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import orjson

MIB = 1024 * 1024
SCRIPT_LIMIT = 60.0  # seconds one attack script may run (a gateway that neither reads nor closes)


class Exchange:
    """The script's side of one connection."""

    def __init__(
        self,
        model: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        released: asyncio.Event,
    ) -> None:
        self.model = model  # the model the gateway asked for: the content of the attack's own answer
        self.reader = reader
        self.writer = writer
        self.released = released  # set once the test has the attacked client's answer
        self.sent = 0

    @property
    def gone(self) -> bool:
        """The gateway closed (or reset) the connection."""
        return self.writer.is_closing() or self.reader.at_eof()

    async def send(self, data: bytes) -> bool:
        """Write and wait for the socket to take it; False once the gateway has gone."""
        if self.gone:
            return False
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            return False
        self.sent += len(data)
        return not self.gone

    async def send_all(self, pieces: Iterable[bytes]) -> bool:
        """Write pieces one by one (made lazily by the caller's generator) until done or the gateway
        goes; True when every piece was written."""
        for piece in pieces:
            if not await self.send(piece):
                return False
        return True

    async def wait_closed(self, within: float) -> bool:
        """Wait (at most ``within`` seconds, reading and dropping what comes) for the gateway to close."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
                return True
        return False


Script = Callable[[Exchange], Awaitable[bool]]  # True: the connection stays open for further requests


@dataclass
class Connection:
    models: list[str] = field(default_factory=list)  # the model of each request, in order


class HostileUpstream:
    """``with HostileUpstream() as up: up.scripts["attack"] = script; ... up.url``."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.connections: list[Connection] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._released: asyncio.Event | None = None
        self._settled = threading.Event()  # the last attack script has returned

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> HostileUpstream:
        started = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._released = asyncio.Event()
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="hostile-upstream", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or self._thread is None:
            return

        async def shut() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    def __enter__(self) -> HostileUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm(self) -> None:
        """Before an attack: the next script waits for :meth:`release` where it asks to."""
        self._settled.clear()
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.clear)

    def release(self) -> None:
        """The attacked client has its answer: scripts waiting on ``exchange.released`` go on."""
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    def settled(self, within: float) -> bool:
        """Wait for the attack script to return (it returns when the gateway closes, at the latest)."""
        return self._settled.wait(within)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection()
        self.connections.append(conn)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                model, stream = request
                conn.models.append(model)
                script = self.scripts.get(model)
                if script is None:
                    writer.write(honest_answer(model, stream))
                    await writer.drain()
                    continue
                assert self._released is not None
                try:
                    async with asyncio.timeout(SCRIPT_LIMIT):
                        if not await script(Exchange(model, reader, writer, self._released)):
                            return
                finally:
                    self._settled.set()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            return
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bool] | None:
    """The next request's model and stream flag; None when the gateway closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = orjson.loads(await reader.readexactly(length)) if length else {}
    return str(body.get("model", "")), bool(body.get("stream"))


def honest_answer(model: str, stream: bool) -> bytes:
    """A correct answer whose content is ``model``: JSON, or SSE (chunked) ending in [DONE]."""
    if not stream:
        body = answer_json(model)
        return json_head(len(body)) + body
    events = [
        chunk_event(model),
        chunk_event("", "stop"),
        b"data: " + orjson.dumps({"id": "h", "choices": [], "usage": _USAGE}) + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    return SSE_HEAD + b"".join(chunked(e) for e in events) + chunked(b"")


_USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def answer_json(content: str) -> bytes:
    """A chat completion body whose message is ``content``."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return orjson.dumps({"id": "h", "object": "chat.completion", "choices": [choice], "usage": _USAGE})


def chunk_event(content: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return (
        b"data: "
        + orjson.dumps({"id": "h", "object": "chat.completion.chunk", "choices": [choice]})
        + b"\n\n"
    )


def json_head(length: int, *extra: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(data: bytes) -> bytes:
    """One chunk of a chunked body (b"" gives the last chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
