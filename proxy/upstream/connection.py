"""One TCP (or TLS) connection to a provider or through an egress proxy: hands what it reads to the answer
in progress, and marks itself closed when the server ends it."""

from __future__ import annotations

import asyncio
from typing import Protocol, cast


class Receiver(Protocol):
    """The answer in progress on a connection (an ``UpstreamResponse``)."""

    def feed(self, data: bytes) -> None: ...

    def eof(self, exc: Exception | None) -> None: ...


class Connection(asyncio.Protocol):
    transport: asyncio.Transport

    __slots__ = ("_drained", "closed", "idle_since", "response", "transport")

    def __init__(self) -> None:
        self.closed = False
        self.idle_since = 0.0
        self.response: Receiver | None = None
        self._drained: asyncio.Future[None] | None = None  # set while the transport's buffer is full

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def drain(self) -> None:
        """Until the transport's write buffer is below its high-water mark (an upload's back-pressure);
        at once when the connection is gone (the next write is then dropped by the transport)."""
        drained = self._drained
        if drained is not None and not self.closed:
            await drained

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not registered subclasses

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes while idle in the pool: an unsolicited answer; never reuse this one
            self.close()
            return
        response.feed(data)

    def eof_received(self) -> bool:
        self.closed = True
        if self.response is not None:
            self.response.eof(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()  # a sender waiting to drain must not wait for ever
        if self.response is not None:
            self.response.eof(exc)

    def close(self) -> None:
        self.closed = True
        self.response = None
        self.transport.close()
