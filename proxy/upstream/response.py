"""One answer from a provider: parsed by llhttp (``httptools``) as its bytes arrive, read by the caller.

Framing (RFC 9112), enforced by llhttp and here:
- ``Content-Length`` of ASCII digits only; two different ones are an error.
- ``Transfer-Encoding`` whose last coding is ``chunked`` frames the body; this client sends no ``TE``, so
  any other transfer coding (``chunked, gzip``, ``gzip``) is an error, never a guess. With
  ``Content-Length`` as well, chunked wins and the connection is closed after the answer (a sign of a
  confused or hostile hop).
- Chunk sizes are hex digits with nothing around them.
- 1xx answers are skipped, at most ``max_informational`` of them; ``101`` is an error (no upgrade asked).
- Bytes after the answer (a second one glued behind it, or anything once it is complete) mean the
  connection is out of step: it is closed, never reused.

Bounds (each a :class:`LimitExceeded`, the connection closed): the head (1xx answers included) past
``max_head_bytes``; a body read whole past ``max_response_bytes``; a compressed body that inflates past
``max_decompression_ratio`` times its size on the wire (:mod:`proxy.upstream.decoding`); a compressed
body whose stream did not end is an error, not a short success.

Flow control: reading from the socket pauses while more than ``HIGH_WATER`` bytes wait unread.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httptools

from proxy.upstream.connection import Connection
from proxy.upstream.decoding import DecodingFailed, Inflater, inflater_for
from proxy.upstream.egress import Egress
from proxy.upstream.errors import ClosedBeforeAnswer, ExchangeBroken, LimitExceeded, named
from proxy.upstream.origin import PoolKey


class Pool(Protocol):
    """Where a finished answer's connection goes back to (the client's keep-alive pool)."""

    def put_back(self, key: PoolKey, conn: Connection, now: float) -> None: ...


HIGH_WATER = 256 * 1024  # unread body bytes before the socket is paused
LINGER = 1.0  # seconds a finished stream's connection waits for the rest of its framing (see release)

_HEAD, _BODY, _DONE = range(3)


class _Stop(Exception):
    """Raised in a parser callback to stop parsing this read (the reason is already recorded)."""


class UpstreamResponse:
    """The status and headers of an answer, and its body as it arrives.

    ``headers`` has lower-case names; a repeated header's values are joined with ", ".
    The ``on_*`` methods are llhttp's callbacks, called from :meth:`feed`.
    """

    status: int
    headers: dict[str, str]

    def __init__(
        self,
        pool: Pool,
        conn: Connection | None,
        pool_key: PoolKey,
        loop: asyncio.AbstractEventLoop,
        idle: float | None,
        deadline: float | None,
        egress: Egress,
    ) -> None:
        self.status = 0
        self.headers = {}
        self._pool = pool
        self._conn = conn
        self._pool_key = pool_key
        self._loop = loop
        self._idle = idle
        self._deadline = deadline
        self._egress = egress
        self._parser = httptools.HttpResponseParser(self)
        self._parser.set_dangerous_leniencies(
            lenient_chunked_length=True
        )  # TE with CL: see on_headers_complete
        self._state = _HEAD
        self._received = 0  # bytes read from the socket
        self._head_bytes = 0  # bytes of status lines and headers parsed (1xx answers included)
        self._informational = 0  # 1xx answers seen
        self._length = -1  # the Content-Length, -1 without one
        self._until_close = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._keep_alive = True
        self._decoder: Inflater | None = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._discarding = False  # released before the end: what still comes is dropped
        self._lingering: Connection | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- reading (the caller's side) --

    @property
    def past_deadline(self) -> bool:
        """The exchange's overall deadline (the ``total`` timeout) has passed."""
        return self._deadline is not None and self._loop.time() >= self._deadline

    @property
    def answered(self) -> bool:
        """The status line and headers have arrived."""
        return self._state != _HEAD

    def forbid_reuse(self) -> None:
        """The request was not sent whole (an upload cut short): the connection must not be reused."""
        self._keep_alive = False

    @property
    def complete(self) -> bool:
        """The whole body has arrived (it may still be waiting to be read)."""
        return self._state == _DONE

    async def readany(self, by: float | None = None) -> bytes:
        """The body bytes that have arrived since the last read (waiting for some), or b"" at the end.
        ``by``: an extra deadline on the loop's clock for this read."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._state == _DONE:
                return b""
            await self._wait(by)
        return self._take()

    async def read(self, limit: int | None = None, by: float | None = None) -> bytes:
        """The rest of the body. ``limit``: at most that many bytes (what is beyond is left unread);
        without it the whole body, refused with :class:`LimitExceeded` past ``max_response_bytes``."""
        cap = self._egress.max_response_bytes
        if limit is None and self._length > cap and self._decoder is None:
            self._refuse(f"the response body ({self._length} bytes) exceeds max_response_bytes ({cap})")
        parts: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            chunk = await self.readany(by)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if limit is None and size > cap:
                self._refuse(f"the response body exceeds max_response_bytes ({cap})")
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data if limit is None else data[:limit]

    def release(self, rest_expected: bool = False) -> None:
        """Done with this answer: its connection goes back to the pool if the whole body has arrived and
        the server keeps it open, and is closed otherwise. Idempotent.

        ``rest_expected``: the caller has seen the end of the content (a stream's ``[DONE]``) but not
        necessarily of the body's framing (the last chunk often comes in a later packet). The connection
        then waits up to ``LINGER`` seconds for it, discarding any bytes before it, and goes back to the
        pool when it comes: the next call skips a new TCP and TLS handshake. Never use it to abandon an
        answer still being produced: closing is what tells a provider to stop generating."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            conn.transport.resume_reading()
        if self._state == _DONE:
            reusable = self._keep_alive and self._error is None and not conn.closed
        elif (
            rest_expected
            and self._state == _BODY
            and not self._until_close
            and self._error is None
            and not conn.closed
        ):
            self._discarding = True
            self._lingering = conn
            self._linger_timer = self._loop.call_later(LINGER, self._end_linger, False)
            return
        else:
            reusable = False
        conn.response = None
        if reusable:
            self._pool.put_back(self._pool_key, conn, self._loop.time())
        else:
            conn.close()

    def _end_linger(self, reuse: bool) -> None:
        conn, self._lingering = self._lingering, None
        if conn is None:
            return
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        conn.response = None
        if reuse and self._keep_alive and not conn.closed:
            self._pool.put_back(self._pool_key, conn, self._loop.time())
        else:
            conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _refuse(self, message: str) -> None:
        self._error = LimitExceeded(named(self._egress.provider, message))
        self._keep_alive = False
        self._chunks.clear()
        self._buffered = 0
        self._discard()
        raise self._error

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self._conn is not None:
            self._paused = False
            self._conn.transport.resume_reading()
        return data

    async def wait_head(self, by: float | None) -> None:
        while self._state == _HEAD:
            if self._error is not None:
                raise self._error
            await self._wait(by)

    async def _wait(self, by: float | None) -> None:
        """Until something arrives (data, the end, an error) or a deadline passes."""
        loop = self._loop
        until = _earliest(_earliest(loop.time() + self._idle if self._idle else None, self._deadline), by)
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(until, _expire, waiter) if until is not None else None
        try:
            await waiter
        except TimeoutError:
            self._discard()  # the answer is incomplete: this connection cannot be reused
            raise
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- parsing (the connection's side) --

    def feed(self, data: bytes) -> None:
        state = self._state
        if state == _DONE:  # bytes after the answer: the connection is out of step
            self._keep_alive = False
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except _Stop:
            pass
        except httptools.HttpParserCallbackError:
            pass  # a callback stopped the parse: the reason is recorded
        except httptools.HttpParserUpgrade:
            self._fail(ExchangeBroken(self._named("the provider switched protocols (not asked for)")))
        except httptools.HttpParserError as exc:
            if self._state == _DONE:  # garbage after a complete answer
                self._keep_alive = False
            else:
                self._fail(
                    ExchangeBroken(self._named(f"the provider's answer is not valid HTTP/1.1 ({exc})"))
                )
        if self._state == _HEAD and self._received > self._egress.max_head_bytes and self._error is None:
            limit = self._egress.max_head_bytes
            self._fail(LimitExceeded(self._named(f"the response head exceeds max_head_bytes ({limit})")))
        if self._state == _DONE and self._lingering is not None:
            self._end_linger(True)

    def on_message_begin(self) -> None:
        if self._state == _DONE:  # a second answer glued behind the first
            self._keep_alive = False
            raise _Stop

    def on_status(self, reason: bytes) -> None:
        self._count_head(len(reason) + 15)  # "HTTP/1.1 200 " and CRLF around the reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").rstrip(" \t")
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def _count_head(self, size: int) -> None:
        """The head's bytes as llhttp hands them over: a head that came whole in one read is bounded too."""
        self._head_bytes += size
        if self._head_bytes > self._egress.max_head_bytes:
            limit = self._egress.max_head_bytes
            self._fail(LimitExceeded(self._named(f"the response head exceeds max_head_bytes ({limit})")))
            raise _Stop

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        headers = self.headers
        if status < 200:  # 100 Continue, 103 Early Hints: the real answer follows
            self._informational += 1
            if self._informational > self._egress.max_informational:
                limit = self._egress.max_informational
                self._fail(LimitExceeded(self._named(f"more than max_informational ({limit}) 1xx answers")))
                raise _Stop
            self.headers = {}
            return
        self.status = status
        self._keep_alive = self._parser.should_keep_alive()
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.lower().replace(" ", "").replace("\t", "") != "chunked":
                self._fail(ExchangeBroken(self._named(f"unsupported transfer-encoding {coding[:40]!r}")))
                raise _Stop
            if "content-length" in headers:  # RFC 9112 6.3: chunked wins; the connection is suspect
                self._keep_alive = False
        elif "content-length" in headers:
            self._length = int(headers["content-length"])  # llhttp accepted it: ASCII digits
        elif status not in (204, 304):
            self._until_close = True
            self._keep_alive = False
        encoding = headers.get("content-encoding", "identity").lower()
        try:
            self._decoder = inflater_for(encoding, self._egress.max_decompression_ratio)
        except ValueError:
            self._fail(ExchangeBroken(self._named(f"unsupported content-encoding {encoding[:40]!r}")))
            raise _Stop from None
        self._state = _BODY
        self._wake()

    def on_body(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._decoder is None:
            self._chunks.append(data)
            self._buffered += len(data)
        else:
            try:
                self._buffered += self._decoder.inflate(data, self._received, self._chunks)
            except DecodingFailed as failed:
                message = self._named(str(failed))
                self._fail(LimitExceeded(message) if failed.exceeded else ExchangeBroken(message))
                raise _Stop from None
        if self._buffered > HIGH_WATER and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._state == _HEAD:
            return  # the end of a 1xx answer
        if not self._finish():
            raise _Stop

    def _finish(self) -> bool:
        """The body's framing ended; False if its content did not (a compressed stream cut short)."""
        decoder = self._decoder
        if decoder is not None:
            self._decoder = None
            if not decoder.ended and not self._discarding:
                self._fail(ExchangeBroken(self._named("the provider's compressed body is cut short")))
                return False
        self._state = _DONE
        self._wake()
        return True

    def eof(self, exc: Exception | None) -> None:
        if self._until_close and self._state == _BODY and self._error is None:
            self._finish()
        elif self._state != _DONE and self._error is None:
            if self._state == _HEAD and not self._received:
                self._error = ClosedBeforeAnswer(
                    self._named("the provider closed the connection without answering")
                )
            else:
                why = f" ({exc})" if exc else ""
                self._error = ExchangeBroken(
                    self._named(f"the provider closed the connection mid-answer{why}")
                )
        self._keep_alive = False
        self._wake()
        self._end_linger(False)

    def _fail(self, error: ExchangeBroken) -> None:
        self._error = error
        self._keep_alive = False
        if self._conn is not None:
            self._conn.response = None
            self._conn.transport.close()
        self._wake()
        self._end_linger(False)

    def _named(self, message: str) -> str:
        return named(self._egress.provider, message)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
