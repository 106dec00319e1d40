"""Client connections: the limits aiohttp's server leaves to the application.

aiohttp closes a keep-alive connection left idle for ``keepalive_timeout`` (a runner option, set from
``server.keepalive_timeout`` by :mod:`proxy.edge.shutdown`). It does not bound the time a client takes to
send a request head, nor the number of open connections. This module adds both:

- ``server.header_timeout``: once the first byte of a request head has arrived, the whole head must arrive
  within this many seconds, however often its lines trickle in; otherwise the connection is closed.
- ``server.max_connections``: at most this many client connections are open (and at most half the
  process's open-files limit: each request in flight may hold a connection to a provider too). A new
  connection past the cap closes the least recently active connection that is waiting for a request, to
  make room; when every connection is busy with a request, the new one gets a canned 503 and is closed,
  without a parser, a task or a log line.

:func:`raise_open_files_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start.

Each accepted connection's protocol is a :class:`Connection` around aiohttp's own request handler: it
forwards every callback, and after each read asks the handler whether it is still waiting for a request
head. That question reads two attributes aiohttp keeps for itself (the future its loop awaits between
requests, and its count of parsed heads); tests/edge pins the behaviour, so an aiohttp upgrade that
changes them fails there.
"""

from __future__ import annotations

import asyncio
import resource
from typing import cast

from aiohttp import web

from proxy.config import ServerConfig

# A connection refused for lack of room: a complete answer made once, written with no parsing or logging.
_REFUSAL_BODY = (
    b'{"error":{"message":"Too many open connections; retry shortly.","type":"server_error",'
    b'"param":null,"code":"overloaded"}}'
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


def raise_open_files_limit() -> int:
    """Lift the soft open-files limit to the hard one (idle sockets must not exhaust it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # some platforms refuse their own hard limit: keep what we have
    return soft


def connection_cap(max_connections: int, open_files: int) -> int:
    """Client connections allowed: the setting, and half the open files (the rest: providers, store)."""
    if open_files == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, open_files // 2))


class Connections:
    """The open client connections of one listener, least recently active first."""

    def __init__(self, server: web.Server, cap: int, header_timeout: float) -> None:
        self.server = server  # aiohttp's protocol factory: one request handler per connection
        self.cap = cap
        self.header_timeout = header_timeout
        self.open: dict[Connection, None] = {}  # an ordered set: least recently active first
        self.refused = 0

    def factory(self) -> Connection:
        return Connection(self)

    def admit(self, conn: Connection) -> bool:
        """Make room for ``conn`` (closing the least recently active waiting connection), or refuse it."""
        if len(self.open) >= self.cap and not self._evict():
            self.refused += 1
            return False
        self.open[conn] = None
        return True

    def _evict(self) -> bool:
        # Busy connections met on the way go to the back (they are in use now), so the next scan at the
        # cap does not step over them again before it reaches the connections behind them.
        for _ in range(len(self.open)):
            conn = next(iter(self.open))
            if conn.waiting():
                del self.open[conn]
                conn.close()
                return True
            del self.open[conn]
            self.open[conn] = None
        return False

    def active(self, conn: Connection) -> None:
        if conn in self.open:
            del self.open[conn]
            self.open[conn] = None

    def lost(self, conn: Connection) -> None:
        self.open.pop(conn, None)


class Connection(asyncio.Protocol):
    """aiohttp's request handler for one client connection, with the head timeout and the cap around it."""

    __slots__ = ("connections", "handler", "head_timer", "heads")

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.handler: web.RequestHandler | None = None
        self.head_timer: asyncio.TimerHandle | None = None
        self.heads = 0  # the handler's count of parsed heads when the head timer was armed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        if not self.connections.admit(self):
            transport.write(REFUSAL)
            transport.close()
            return
        self.handler = self.connections.server()
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        handler = self.handler
        if handler is None:
            return
        self.connections.active(self)
        handler.data_received(data)
        if self.waiting():  # a head begun and not finished: it has header_timeout to arrive whole
            if self.head_timer is None:
                self.heads = handler._request_count
                self.head_timer = asyncio.get_running_loop().call_later(
                    self.connections.header_timeout, self._head_too_slow
                )
        elif self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def waiting(self) -> bool:
        """Whether the handler waits for a request head (between requests, or with part of one read)."""
        handler = self.handler
        waiter = handler._waiter if handler is not None else None
        return waiter is not None and not waiter.done()

    def _head_too_slow(self) -> None:
        self.head_timer = None
        handler = self.handler
        if handler is not None and self.waiting() and handler._request_count == self.heads:
            handler.force_close()

    def close(self) -> None:
        if self.handler is not None:
            self.handler.force_close()

    def eof_received(self) -> None:
        if self.handler is not None:
            self.handler.eof_received()  # aiohttp's keeps the connection open (half-closed) for the answer

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        if self.handler is not None:
            self.connections.lost(self)
            self.handler.connection_lost(exc)
            self.handler = None


class ClientSite(web.BaseSite):
    """A TCP listener (like aiohttp's ``TCPSite``, and so closed by the runner's cleanup) whose connections
    go through :class:`Connections`: ``server.header_timeout``, and ``server.max_connections`` within half
    the open-files limit at the time it starts."""

    __slots__ = ("_host", "_port", "_reuse_port", "_server_config", "connections")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, server: ServerConfig, *, reuse_port: bool = False
    ) -> None:
        super().__init__(runner)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._server_config = server
        self.connections: Connections | None = None

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        config = self._server_config
        cap = connection_cap(config.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        self.connections = Connections(server, cap, config.header_timeout)
        self._server = await asyncio.get_running_loop().create_server(
            self.connections.factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )

    @property
    def ports(self) -> list[int]:
        """The ports actually bound (``port: 0`` picks a free one), once started."""
        sockets = getattr(self._server, "sockets", None) or ()  # asyncio's or uvloop's server
        return sorted({sock.getsockname()[1] for sock in sockets})
