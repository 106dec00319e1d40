"""A pipelined Redis connection for the two scripts every request runs (admission and settlement).

redis-py spends ~0.15 ms of CPU per command on its connection pool, locks and reply handling: twice per
request, that was more than the rest of the gateway's own work. This connection writes each command the
moment it is issued and matches replies in order (RESP guarantees it), so concurrent requests share one
socket with no pool and no lock; hiredis packs commands and parses replies in C.

It speaks only what the hot path needs (EVALSHA with a SCRIPT LOAD on NOSCRIPT, AUTH and SELECT at
connect) against a single Redis node; everything else, and Redis Cluster, goes through redis-py. Errors
surface as :class:`redis.exceptions.RedisError` / ``OSError`` so the store's one translation boundary
(``RedisStore._run``) stays the only place that knows about failures. A command whose caller timed out
still gets its reply matched (and dropped), so the order of replies is never lost; a broken connection
fails every waiting command and is replaced on the next call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.WriteTransport | None = None
        self.lost: Exception | None = None
        self.outgoing: list[bytes] = []

    def flush(self) -> None:
        data, self.outgoing = b"".join(self.outgoing), []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        # else: connection_lost has failed (or will fail) every waiter of these commands

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have write() and close().
        self.transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"redis protocol error: {exc}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is False:
                return
            waiter = self.waiters.popleft()
            if waiter.done():  # its caller gave up (timeout); the reply is dropped, the order kept
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
                waiter.set_exception(error)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"redis connection lost ({exc or 'closed'})"))

    def _fail(self, error: Exception) -> None:
        self.lost = error
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class PipelinedConnection:
    """``await conn.evalsha(script, keys, args)``: one socket, commands pipelined as they are issued."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.lstrip("/") or 0)
        self.connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        """Plain ``redis://`` to one node (TLS and unix sockets go through redis-py)."""
        return urlsplit(url).scheme == "redis"

    async def evalsha(
        self, script: str | bytes | memoryview, sha: str, keys: list[str], args: list[Any]
    ) -> Any:
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute(
                "SCRIPT", "LOAD", bytes(script) if isinstance(script, memoryview) else script
            )  # Redis restarted or flushed its script cache
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def execute(self, *command: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or protocol.transport is None:
            protocol = await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiters.append(future)
        # Commands issued in the same loop iteration leave in one write (one system call, not one each).
        protocol.outgoing.append(hiredis.pack_command(command))
        if len(protocol.outgoing) == 1:
            loop.call_soon(protocol.flush)
        return await future

    async def _connect(self) -> _Protocol:
        # Concurrent callers share one connection attempt.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        hello: list[tuple[Any, ...]] = []
        if self.password is not None:
            hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        for command in hello:
            future: asyncio.Future[Any] = loop.create_future()
            protocol.waiters.append(future)
            assert protocol.transport is not None
            protocol.transport.write(hiredis.pack_command(command))
            async with asyncio.timeout(self.connect_timeout):
                await future
        self._protocol = protocol
        return protocol

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()
