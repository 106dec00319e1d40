"""The stream relay: upstream SSE events to the client as they arrive, with a tap for usage.

Each read from upstream is parsed; every event the provider's reader keeps is written to the client in
one write per read (events that arrived together leave together), so nothing waits for ``[DONE]``.
``write`` awaits the client's socket draining, which bounds per-stream memory when a reader is slow.

How a stream ends:
- the provider finishes (``[DONE]``, or EOF once the answer is whole: every choice finished and the usage
  in, as in quirks/no-done-terminator.sse): ``completed``;
- the provider reports an error, the connection breaks, the stream ends before the answer is whole (mid
  event, or after the finish reason but before the usage) or stalls longer than the idle timeout: the
  client gets one ``data: {"error": ...}`` event and the stream ends, never a fake ``[DONE]``:
  ``upstream_error``;
- the client goes away: by policy, keep reading upstream (bounded by ``drain_timeout``) to get the
  provider's usage, or stop at once and estimate: ``client_aborted``;
- the client stays connected but takes nothing for ``write_timeout`` while bytes wait for it (a stuck or
  malicious reader): the connection is closed and the stream ends as if the client had gone away:
  ``client_aborted`` (:class:`WriteWatch`).

Memory per stream stays bounded whatever the reader's speed: ``write`` waits while the socket's buffer is
full, so the relay stops reading upstream, whose socket buffer fills in turn and throttles the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
from aiohttp import web

from proxy.dataplane.dispatch import OpenStream
from proxy.metering.context import RequestContext
from proxy.store.records import Outcome
from proxy.upstream.client import UpstreamIOError

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell nginx-style proxies in front not to buffer
}


class WriteWatch:
    """Closes the connection of a client that takes nothing for ``timeout`` seconds while bytes wait for
    it: the transport's write buffer is not empty and has not shrunk.

    One timer per stream looks every quarter of the timeout, instead of a timeout around each write
    (which would cost a timer and an await per chunk); so a stalled client is cut between 1 and 1.25
    times ``timeout`` after it stopped taking. Closing the transport wakes a write waiting on it (or
    fails the next one), and the relay goes on as after a disconnect.
    """

    __slots__ = ("_handle", "_last", "_period", "_still", "_transport")

    TICKS = 4  # looks per timeout

    def __init__(self, transport: asyncio.Transport, timeout: float) -> None:
        self._transport = transport
        self._period = timeout / self.TICKS
        self._last = 0  # the buffer's size at the last look
        self._still = 0  # looks in a row that found bytes waiting and none taken
        self._handle = asyncio.get_running_loop().call_later(self._period, self._look)

    def _look(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        size = transport.get_write_buffer_size()
        # Not shrunk: the client took nothing (or less than the relay added meanwhile).
        self._still = self._still + 1 if size and size >= self._last else 0
        self._last = size
        if self._still >= self.TICKS:
            transport.abort()
            return
        self._handle = asyncio.get_running_loop().call_later(self._period, self._look)

    def stop(self) -> None:
        self._handle.cancel()


def error_event(message: str, type_: str = "upstream_error", code: str | None = "upstream_error") -> bytes:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def relay(
    request: web.Request,
    opened: OpenStream,
    headers: dict[str, str],
    ctx: RequestContext,
    drain: bool,
    drain_timeout: float,
    write_timeout: float,
    stream_error: Callable[[str], bytes] = error_event,
) -> web.StreamResponse:
    """Relay the stream to its end. Once it has ended, the stream's usage, events, time to first byte and
    outcome are in ``ctx`` (left as they were if the relay raises). ``write_timeout`` (0: none) bounds
    how long a client may take nothing while bytes wait for it (:class:`WriteWatch`). ``stream_error``
    makes the event that ends a broken stream (the endpoint's wire format; OpenAI's chat by default)."""
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    tap, upstream = opened.tap, opened.response
    ttfb: float | None = None
    error: str | None = None  # why the stream ended early, on the provider's side
    client_ok = True
    absorbed = False  # a cancellation already turned into a disconnect
    watch: WriteWatch | None = None

    def absorb_cancel() -> bool:
        """A server that cancels handlers when the client disconnects (aiohttp's ``handler_cancellation``,
        on in its test server and in apps that mount the gateway) must not cost the usage record: a
        cancellation caused by the client's going away becomes a disconnect, once; any other propagates."""
        nonlocal client_ok, absorbed
        task = asyncio.current_task()
        gone = request.transport is None or request.transport.is_closing()
        if absorbed or not gone or task is None or task.cancelling() != 1:
            return False
        task.uncancel()
        absorbed, client_ok = True, False
        return True

    async def send(data: bytes) -> None:
        nonlocal client_ok
        if client_ok and data:
            try:
                await response.write(data)
            except (ConnectionError, RuntimeError):  # the client went away (or was cut by the watch)
                client_ok = False
            except asyncio.CancelledError:
                if not absorb_cancel():
                    raise

    try:
        try:
            await response.prepare(request)
        except (ConnectionError, RuntimeError):
            client_ok = False
        transport = request.transport
        if write_timeout and client_ok and transport is not None:
            watch = WriteWatch(transport, write_timeout)
        await send(opened.held)
        if client_ok:
            ttfb = time.monotonic() - ctx.started
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # on the loop's clock
        while not tap.finished and tap.error is None:
            if not client_ok:
                if not drain:
                    break
                if deadline is None:
                    deadline = loop.time() + drain_timeout
            try:
                chunk = await upstream.readany(by=deadline)
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    break  # the drain ran out: the usage is estimated; not the provider's fault
                error = (
                    "the stream outlasted the provider's total timeout"
                    if upstream.past_deadline
                    else "the provider stalled (idle timeout)"
                )
                break
            except UpstreamIOError as exc:
                error = f"the provider's stream broke ({exc})"
                break
            except asyncio.CancelledError:
                if absorb_cancel():
                    continue
                raise
            if not chunk:
                # Ended without its end marker: an error unless the answer was whole (finish and usage
                # in); quirks/truncated-mid-event.sse is cut after the finish reason, inside the usage.
                cut = tap.close()
                if not tap.reader.complete:
                    error = (
                        "the provider's stream stopped in the middle of an event"
                        if cut
                        else "the provider's stream ended before its end marker"
                    )
                break
            await send(tap.feed(chunk))
        if tap.error is not None:
            error = tap.error.message
        if error is not None:
            await send(stream_error(f"Upstream error after the stream started: {error}"))
        if client_ok:
            try:
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                client_ok = False
    finally:
        if watch is not None:
            watch.stop()
        # After [DONE] only the body's last chunk may be missing: the connection waits for it and is reused.
        upstream.release(rest_expected=tap.finished)
        opened.done(tap.error is None and error is None)
    ctx.usage, ctx.output_chars, ctx.ttfb = tap.usage, tap.output_chars, ttfb
    if not client_ok:
        ctx.outcome = Outcome.CLIENT_ABORTED
    elif error is not None:
        ctx.outcome = Outcome.UPSTREAM_ERROR
    else:
        ctx.outcome = Outcome.COMPLETED
    return response
