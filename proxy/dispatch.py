"""Dispatch: send one client request to its targets in order until one answers.

A server fault (connect error, timeout before the answer, 5xx, 429, an error event before any content)
moves on to the next target; a client fault (the provider says the request itself is wrong) is answered at
once. Nothing has reached the client while dispatch runs: for a stream, dispatch reads up to the first
data event and holds it, so an error sent with HTTP 200 still falls back. After dispatch returns an
:class:`OpenStream`, the relay owns the stream and never falls back again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from proxy.config import Timeouts
from proxy.plugin import Call, CallRejected, Fault, Provider, Reply, UpstreamError
from proxy.routing import Choice
from proxy.tap import StreamTap

MAX_ERROR_BODY = 1 << 20  # an error page larger than this is cut: it only feeds a message


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    outcome: str  # "ok", "HTTP 503", "timeout", "connect error", ...
    timeout: bool = False

    def describe(self) -> str:
        return f"{self.provider}/{self.model}: {self.outcome}"


@dataclass(slots=True)
class Served:
    """A complete non-streaming answer."""

    choice: Choice
    provider: Provider
    reply: Reply
    attempts: list[Attempt]


@dataclass(slots=True)
class OpenStream:
    """A stream whose first data event has arrived and is held in ``held``; nothing sent yet."""

    choice: Choice
    provider: Provider
    response: aiohttp.ClientResponse
    tap: StreamTap
    held: bytes  # what the client gets first, once the relay has sent the headers
    attempts: list[Attempt]


@dataclass(slots=True)
class Refused:
    """The provider refused the request as the caller's fault; the client gets this error as is."""

    choice: Choice
    error: UpstreamError
    attempts: list[Attempt]


@dataclass(slots=True)
class Failed:
    """Every target failed with a server fault (or none could be tried)."""

    attempts: list[Attempt] = field(default_factory=list)
    retry_after: float | None = None

    @property
    def timed_out(self) -> bool:
        return bool(self.attempts) and all(a.timeout for a in self.attempts)


Outcome = Served | OpenStream | Refused | Failed


class _Fault(Exception):
    def __init__(self, attempt: Attempt, retry_after: float | None = None) -> None:
        self.attempt = attempt
        self.retry_after = retry_after


async def dispatch(
    http: aiohttp.ClientSession,
    targets: list[tuple[Choice, Provider, Timeouts]],
    make_call: Callable[[Choice], Call],
    on_attempt: Callable[[Attempt], None] | None = None,
) -> Outcome:
    failed = Failed()
    for choice, provider, timeouts in targets:
        call = make_call(choice)
        try:
            outcome = await _try(http, choice, provider, timeouts, call, failed.attempts)
        except _Fault as fault:
            failed.attempts.append(fault.attempt)
            if fault.retry_after is not None:
                failed.retry_after = max(failed.retry_after or 0.0, fault.retry_after)
            if on_attempt is not None:
                on_attempt(fault.attempt)
            continue
        return outcome
    return failed


async def _try(
    http: aiohttp.ClientSession,
    choice: Choice,
    provider: Provider,
    timeouts: Timeouts,
    call: Call,
    attempts: list[Attempt],
) -> Outcome:
    try:
        request = provider.build_request(call)
    except CallRejected as rejected:
        return _judge(choice, rejected.error, attempts)
    timeout = aiohttp.ClientTimeout(
        total=timeouts.total or None, connect=timeouts.connect or None, sock_read=timeouts.idle or None
    )
    deadline = time.monotonic() + (timeouts.first_byte or timeouts.total or 3600.0)
    try:
        async with asyncio.timeout_at(_loop_time(deadline)):
            response = await http.post(
                request.url, data=request.body, headers=request.headers, timeout=timeout
            )
    except TimeoutError:
        raise _Fault(
            Attempt(choice.provider, choice.model, "timeout before the answer", timeout=True)
        ) from None
    except aiohttp.ClientConnectorError:
        raise _Fault(Attempt(choice.provider, choice.model, "connect error")) from None
    except aiohttp.ClientError as exc:
        raise _Fault(
            Attempt(choice.provider, choice.model, f"connection failed ({type(exc).__name__})")
        ) from None

    handed_over = False
    try:
        content_type = response.headers.get("Content-Type", "").lower()
        if response.status >= 400:
            body = await _read_capped(response, deadline)
            error = provider.map_error(response.status, content_type, body)
            error = _with_retry_after(error, response.headers.get("Retry-After"))
            return _judge(choice, error, attempts)
        if call.stream and "text/event-stream" in content_type:
            opened = await _open_stream(choice, provider, call, response, deadline, attempts)
            handed_over = isinstance(opened, OpenStream)  # the relay owns the response now
            return opened
        body = await _read_all(response, deadline)
        result = provider.read_reply(call, body)
        if isinstance(result, UpstreamError):
            return _judge(choice, result, attempts)
        if call.stream:
            raise _Fault(
                Attempt(choice.provider, choice.model, f"expected an event stream, got {content_type!r}")
            )
        return Served(choice, provider, result, [*attempts, Attempt(choice.provider, choice.model, "ok")])
    except TimeoutError:
        raise _Fault(
            Attempt(choice.provider, choice.model, "timeout before the answer", timeout=True)
        ) from None
    except aiohttp.ClientError as exc:
        raise _Fault(
            Attempt(choice.provider, choice.model, f"connection lost ({type(exc).__name__})")
        ) from None
    finally:
        if not handed_over:
            response.release()  # back to the pool when fully read; closed otherwise


def _judge(choice: Choice, error: UpstreamError, attempts: list[Attempt]) -> Refused:
    attempt = Attempt(choice.provider, choice.model, f"HTTP {error.status} {error.message[:200]}")
    if error.fault is Fault.SERVER:
        raise _Fault(attempt, error.retry_after)
    return Refused(choice, error, [*attempts, attempt])


async def _open_stream(
    choice: Choice,
    provider: Provider,
    call: Call,
    response: aiohttp.ClientResponse,
    deadline: float,
    attempts: list[Attempt],
) -> OpenStream | Refused:
    tap = StreamTap(provider.open_stream(call))
    held: list[bytes] = []
    async with asyncio.timeout_at(_loop_time(deadline)):
        while not tap.events:
            chunk = await response.content.readany()
            if not chunk:
                tap.close()
                raise _Fault(Attempt(choice.provider, choice.model, "the stream ended before any event"))
            held.append(tap.feed(chunk))
            if tap.error is not None and not tap.events:
                # An error before any content still falls back: nothing has reached the client. After
                # content, the relay delivers what came and then the error, the same however reads fall.
                return _judge(choice, tap.error, attempts)
    ok = Attempt(choice.provider, choice.model, "ok")
    return OpenStream(choice, provider, response, tap, b"".join(held), [*attempts, ok])


def _with_retry_after(error: UpstreamError, header: str | None) -> UpstreamError:
    if not header:
        return error
    try:
        seconds = float(header)
    except ValueError:
        return error
    return dataclasses.replace(error, retry_after=max(0.0, seconds))


async def _read_capped(response: aiohttp.ClientResponse, deadline: float) -> bytes:
    async with asyncio.timeout_at(_loop_time(deadline)):
        return await response.content.read(MAX_ERROR_BODY)


async def _read_all(response: aiohttp.ClientResponse, deadline: float) -> bytes:
    async with asyncio.timeout_at(_loop_time(deadline)):
        return await response.read()


def _loop_time(deadline: float) -> float:
    """Convert a time.monotonic() deadline to the event loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())
