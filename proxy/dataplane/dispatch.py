"""Dispatch: send one client request to its targets in order until one answers.

A server fault (connect error, timeout before the answer, 5xx, 429, an error event before any content)
moves on to the next target; a client fault (the provider says the request itself is wrong) is answered at
once. Nothing has reached the client while dispatch runs: for a stream, dispatch reads up to the first
data event and holds it, so an error sent with HTTP 200 still falls back. After dispatch returns an
:class:`OpenStream`, the relay owns the stream and never falls back again. What dispatch returns is a
:data:`DispatchResult`: :class:`Served`, :class:`OpenStream`, :class:`OpenBody` (bytes relayed as they
come: audio), :class:`Refused` or :class:`Failed`.

With a :class:`Guard` (the app's; tests may go without), dispatch also
- orders each priority level by the route's strategy (:mod:`proxy.routing.balance`);
- skips targets whose circuit breaker is open or that asked to wait (``Retry-After``)
  (:mod:`proxy.routing.breaker`), per credential: ``Candidate.credential`` names the key this request
  sends (``""``: the provider's shared key; else a tenant's own key's id), so a tenant's own key that
  fails parks that key for that tenant only;
- spends the retry budget on every attempt after the first, and stops when it is spent
  (:mod:`proxy.routing.retry`).
A target is tried at most once per request: one that timed out or broke after the request was sent may
have started working on it, so it is never sent the same request again.

Every provider error is redacted here, where it enters (:mod:`proxy.tenancy.redaction`): the key the call
sent and the provider's shared key are masked in its message before it reaches a client, an attempt
description or a log; a stream's tap does the same for an error event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy.config import BreakerConfig, Timeouts
from proxy.dataplane import content
from proxy.dataplane.dialect import Dialect
from proxy.dataplane.tap import StreamTap
from proxy.metering.pricing import Price
from proxy.observe import tracing
from proxy.plugin import Call, CallRejected, Fault, Provider, Reply, UpstreamError
from proxy.routing.guard import Guard
from proxy.routing.table import Choice, Route
from proxy.tenancy.redaction import redact_error
from proxy.upstream.client import (
    ConnectFailed,
    LimitExceeded,
    UpstreamClient,
    UpstreamIOError,
    UpstreamResponse,
)
from proxy.upstream.egress import Egress
from proxy.upstream.sse import DEFAULT_MAX_EVENT_BYTES

MAX_ERROR_BODY = 1 << 20  # an error page larger than this is cut: it only feeds a message


@dataclass(slots=True)
class Candidate:
    """A target that may serve this request, with what dispatch and metering need of it: the provider's
    timeouts (the route's laid over them), breaker settings and way out, the price, and the credential
    the call sends ("": the provider's shared key; else the id of the tenant's own key)."""

    choice: Choice
    provider: Provider
    timeouts: Timeouts
    price: Price
    breaker: BreakerConfig
    egress: Egress
    credential: str
    # Served through chat and translated back by the request's dialect (the provider does not speak the
    # client's endpoint): see proxy.dataplane.dialect.
    translated: bool = False


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    outcome: str  # "ok", "HTTP 503", "timeout", "connect error", ...
    timeout: bool = False
    status: int | None = None  # the provider's error status, when it answered with one

    def describe(self) -> str:
        return f"{self.provider}/{self.model}: {self.outcome}"


@dataclass(slots=True)
class Served:
    """A complete non-streaming answer."""

    candidate: Candidate
    reply: Reply
    attempts: list[Attempt]


@dataclass(slots=True)
class OpenStream:
    """A stream whose first data event has arrived and is held in ``held``; nothing sent yet."""

    candidate: Candidate
    response: UpstreamResponse
    tap: StreamTap
    held: bytes  # what the client gets first, once the relay has sent the headers
    attempts: list[Attempt]
    # The relay calls this once when the stream ends (True: the provider finished it without an error).
    done: Callable[[bool], None] = lambda ok: None


@dataclass(slots=True)
class OpenBody:
    """A 2xx answer whose body the client gets as it arrives (``Call.raw``: audio); nothing sent yet."""

    candidate: Candidate
    response: UpstreamResponse
    attempts: list[Attempt]
    done: Callable[[bool], None] = lambda ok: None


@dataclass(slots=True)
class Refused:
    """The provider refused the request as the caller's fault; the client gets this error as is."""

    candidate: Candidate
    error: UpstreamError
    attempts: list[Attempt]


@dataclass(slots=True)
class Failed:
    """Every target failed with a server fault (or none could be tried)."""

    attempts: list[Attempt] = field(default_factory=list)
    retry_after: float | None = None
    skipped: list[str] = field(default_factory=list)  # targets not tried, and why

    def describe(self) -> str:
        return "; ".join([*(a.describe() for a in self.attempts), *self.skipped])

    @property
    def timed_out(self) -> bool:
        return bool(self.attempts) and all(a.timeout for a in self.attempts)

    @property
    def provider_status(self) -> int | None:
        """The error status every target tried answered with, when they all agree (429 rate limited,
        Anthropic's 529 overloaded...); None otherwise."""
        statuses = {a.status for a in self.attempts}
        return statuses.pop() if len(statuses) == 1 else None


DispatchResult = Served | OpenStream | OpenBody | Refused | Failed


class _Fault(Exception):
    def __init__(self, attempt: Attempt, retry_after: float | None = None) -> None:
        self.attempt = attempt
        self.retry_after = retry_after


async def dispatch(
    upstream: UpstreamClient,
    candidates: list[Candidate],
    make_call: Callable[[Candidate], Call],
    on_attempt: Callable[[Attempt], None] | None = None,
    *,
    guard: Guard | None = None,
    route: Route | None = None,
    model: str = "",
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    spent: Callable[[], bool] | None = None,
    dialect: Dialect | None = None,
) -> DispatchResult:
    """``spent``: True once the request's body cannot be sent again (an upload streamed to a target
    that then failed): no further target is tried. ``dialect``: the client's wire format, which
    translates the answers of ``translated`` candidates."""
    failed = Failed()
    if guard is not None:
        guard.budget.deposit()
        candidates = guard.balancer.order(candidates, _choice_of, route, model)
    tried: set[Choice] = set()
    for candidate in candidates:
        choice = candidate.choice
        if choice in tried:
            continue  # never the same request to the same target twice: it may have started on it
        if tried and spent is not None and spent():
            failed.skipped.append(
                f"{choice.provider}/{choice.model}: not tried, the upload was already streamed to a target"
            )
            break
        cred = candidate.credential
        if guard is not None:
            if not await guard.breakers.admit(choice, candidate.breaker, cred):
                wait = guard.breakers.wait(choice, cred)
                whose = " (the tenant's own key)" if cred else ""
                failed.skipped.append(f"{choice.provider}/{choice.model}: skipped, cooling down{whose}")
                if wait > 0:
                    failed.retry_after = min(failed.retry_after or wait, wait)
                continue
            if tried and not guard.budget.withdraw():
                guard.breakers.abandon(choice, cred)
                if guard.metrics is not None:
                    guard.metrics.retries_denied.inc()
                failed.skipped.append(f"{choice.provider}/{choice.model}: not tried, retry budget spent")
                break
        tried.add(choice)
        result = await _attempt(upstream, candidate, make_call, failed, guard, max_event_bytes, dialect)
        if result is not None:
            return result
        if on_attempt is not None:
            on_attempt(failed.attempts[-1])
    return failed


def _choice_of(candidate: Candidate) -> Choice:
    return candidate.choice


async def _attempt(
    upstream: UpstreamClient,
    candidate: Candidate,
    make_call: Callable[[Candidate], Call],
    failed: Failed,
    guard: Guard | None,
    max_event_bytes: int,
    dialect: Dialect | None,
) -> DispatchResult | None:
    """One target: the result to return, or None after a server fault (recorded in ``failed``); the
    breaker reported to is the one of the candidate's credential, the one the call sends."""
    choice, breaker, cred = candidate.choice, candidate.breaker, candidate.credential
    if guard is None:
        try:
            return await _try(
                upstream, candidate, make_call(candidate), failed.attempts, max_event_bytes, dialect
            )
        except _Fault as fault:
            _record(failed, fault)
            return None
    started = time.monotonic()
    guard.balancer.start(choice)
    reported = False
    result: DispatchResult | None = None
    try:
        result = await _try(
            upstream, candidate, make_call(candidate), failed.attempts, max_event_bytes, dialect
        )
    except _Fault as fault:
        _record(failed, fault)
        guard.breakers.failure(choice, breaker, cred)
        guard.balancer.finish(choice)
        if fault.retry_after is not None:
            guard.breakers.retry_after(choice, fault.retry_after, cred)
        reported = True
        return None
    finally:
        if not reported and result is None:  # cancelled: neither a success nor a fault
            guard.breakers.abandon(choice, cred)
            guard.balancer.finish(choice)
    if isinstance(result, OpenStream | OpenBody | Served | Refused):
        guard.breakers.success(choice, cred)  # a client fault still shows the target is alive
        guard.balancer.observe(choice, time.monotonic() - started)
    if isinstance(result, OpenStream | OpenBody):
        result.done = _stream_done(guard, choice, breaker, cred, result.done)
    else:
        guard.balancer.finish(choice)
    return result


def _stream_done(
    guard: Guard, choice: Choice, breaker: BreakerConfig, cred: str, then: Callable[[bool], None]
) -> Callable[[bool], None]:
    def done(ok: bool) -> None:
        guard.balancer.finish(choice)
        if not ok:  # broke after the first byte: the client got an error event; the target is suspect
            guard.breakers.failure(choice, breaker, cred)
        then(ok)  # the attempt's span, when traced

    return done


def _record(failed: Failed, fault: _Fault) -> None:
    failed.attempts.append(fault.attempt)
    if fault.retry_after is not None:
        failed.retry_after = max(failed.retry_after or 0.0, fault.retry_after)


async def _try(
    upstream: UpstreamClient,
    candidate: Candidate,
    call: Call,
    attempts: list[Attempt],
    max_event_bytes: int,
    dialect: Dialect | None,
) -> DispatchResult:
    trace = tracing.CURRENT.get()
    if trace is None:  # tracing off: nothing more than this read
        return await _send(upstream, candidate, call, attempts, max_event_bytes, None, dialect)
    choice, operation = candidate.choice, tracing.operation(call.endpoint)
    span = trace.attempt(
        f"{operation} {choice.model}",
        {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": candidate.provider.plugin_name or choice.provider,
            "gen_ai.request.model": choice.model,
            "efflux.provider": choice.provider,
            "efflux.attempt": len(attempts) + 1,
        },
    )
    if trace.capture and not trace.has_input:
        trace.has_input = True
        trace.record("gen_ai.input.messages", content.input_messages(call.body))
    try:
        result = await _send(upstream, candidate, call, attempts, max_event_bytes, span, dialect)
    except _Fault as fault:
        span.finish({"efflux.attempt.outcome": fault.attempt.outcome}, "server_fault")
        raise
    except BaseException as exc:  # cancelled: the client went away while this attempt ran
        span.finish({}, type(exc).__name__)
        raise
    if isinstance(result, Refused):
        span.finish({"efflux.attempt.outcome": result.attempts[-1].outcome}, None)
    elif isinstance(result, OpenStream):  # the span lasts as long as the stream
        result.done = _traced_done(span, result.done)
    else:
        span.finish({"efflux.attempt.outcome": "ok"}, None)
        if trace.capture and isinstance(result, Served):
            trace.record("gen_ai.output.messages", content.output_messages(result.reply.body))
    return result


def _traced_done(span: tracing.AttemptTrace, done: Callable[[bool], None]) -> Callable[[bool], None]:
    def traced(ok: bool) -> None:
        span.finish(
            {"efflux.attempt.outcome": "ok" if ok else "stream broke"}, None if ok else "stream_broke"
        )
        done(ok)

    return traced


async def _send(
    upstream: UpstreamClient,
    candidate: Candidate,
    call: Call,
    attempts: list[Attempt],
    max_event_bytes: int,
    span: tracing.AttemptTrace | None,
    dialect: Dialect | None,
) -> DispatchResult:
    choice, provider, timeouts = candidate.choice, candidate.provider, candidate.timeouts
    dialect = dialect if candidate.translated else None  # the one that translates this answer
    try:
        request = provider.build_request(call)
    except CallRejected as rejected:
        return _judge(candidate, call, rejected.error, attempts)
    first_byte = timeouts.first_byte or timeouts.total or 3600.0
    # Deadlines are on the loop's clock; this one bounds the wait for the headers, then (non-stream) the
    # body, or (stream) the first event.
    deadline = asyncio.get_running_loop().time() + first_byte
    try:
        response = await upstream.post(
            request.url,
            request.body,
            request.headers if span is None else span.headers(request.headers),
            connect=timeouts.connect or None,
            idle=timeouts.idle or None,
            total=timeouts.total or None,
            headers_by=deadline,
            egress=candidate.egress,
        )
        if not isinstance(request.body, bytes):  # an upload: the first byte is awaited from its end
            deadline = asyncio.get_running_loop().time() + first_byte
    except TimeoutError:
        raise _Fault(
            Attempt(choice.provider, choice.model, "timeout before the answer", timeout=True)
        ) from None
    except ConnectFailed as exc:  # the reason names the provider (a TLS certificate not trusted, ...)
        raise _Fault(Attempt(choice.provider, choice.model, f"connect error ({exc})")) from None
    except UpstreamIOError as exc:
        raise _Fault(Attempt(choice.provider, choice.model, f"connection failed ({exc})")) from None
    except ValueError as exc:  # the URL or a header cannot be sent (a configuration error)
        raise _Fault(Attempt(choice.provider, choice.model, f"cannot send ({exc})")) from None

    handed_over = False
    try:
        content_type = response.headers.get("content-type", "").lower()
        if response.status >= 400:
            body = await response.read(MAX_ERROR_BODY, by=deadline)
            error = provider.map_answer(response.status, response.headers, body)
            error = _with_retry_after(error, response.headers.get("retry-after"))
            return _judge(candidate, call, error, attempts)
        if call.raw:
            handed_over = True  # the relay owns the response now
            return OpenBody(candidate, response, [*attempts, Attempt(choice.provider, choice.model, "ok")])
        if call.stream and provider.stream_content_type in content_type:
            opened = await _open_stream(
                candidate, call, response, deadline, attempts, max_event_bytes, dialect
            )
            handed_over = isinstance(opened, OpenStream)  # the relay owns the response now
            return opened
        body = await response.read(by=deadline)
        result = provider.read_reply(call, body)
        if isinstance(result, UpstreamError):
            return _judge(candidate, call, result, attempts)
        if call.stream:
            raise _Fault(
                Attempt(choice.provider, choice.model, f"expected an event stream, got {content_type!r}")
            )
        if dialect is not None:
            result = dialect.reply(result)
        return Served(candidate, result, [*attempts, Attempt(choice.provider, choice.model, "ok")])
    except TimeoutError:
        raise _Fault(
            Attempt(choice.provider, choice.model, "timeout before the answer", timeout=True)
        ) from None
    except LimitExceeded as exc:  # the answer went past a bound (a 2xx body is read whole, capped)
        raise _Fault(Attempt(choice.provider, choice.model, f"answer refused ({exc})")) from None
    except UpstreamIOError as exc:
        raise _Fault(Attempt(choice.provider, choice.model, f"connection lost ({exc})")) from None
    finally:
        if not handed_over:
            response.release()  # back to the pool when fully read; closed otherwise


def _judge(candidate: Candidate, call: Call, error: UpstreamError, attempts: list[Attempt]) -> Refused:
    choice = candidate.choice
    error = redact_error(error, _secrets(candidate, call))
    attempt = Attempt(
        choice.provider, choice.model, f"HTTP {error.status} {error.message[:200]}", status=error.status
    )
    if error.fault is Fault.SERVER:
        raise _Fault(attempt, error.retry_after)
    return Refused(candidate, error, [*attempts, attempt])


async def _open_stream(
    candidate: Candidate,
    call: Call,
    response: UpstreamResponse,
    deadline: float,
    attempts: list[Attempt],
    max_event_bytes: int,
    dialect: Dialect | None,
) -> OpenStream | Refused:
    choice = candidate.choice
    provider = candidate.provider
    decoder = provider.stream_decoder(call)
    reader = provider.open_stream(call)
    if dialect is not None:  # a dialect's reader wraps the plugin's, after the plugin's decoder
        reader = dialect.stream(reader)
    tap = StreamTap(reader, _secrets(candidate, call), max_event_bytes, decoder)
    held: list[bytes] = []
    while not tap.events:
        chunk = await response.readany(by=deadline)
        if not chunk:
            tap.close()
            raise _Fault(Attempt(choice.provider, choice.model, "the stream ended before any event"))
        held.append(tap.feed(chunk))
        if tap.error is not None and not tap.events:
            # An error before any content still falls back: nothing has reached the client. After
            # content, the relay delivers what came and then the error, the same however reads fall.
            return _judge(candidate, call, tap.error, attempts)
    ok = Attempt(choice.provider, choice.model, "ok")
    return OpenStream(candidate, response, tap, b"".join(held), [*attempts, ok])


def _secrets(candidate: Candidate, call: Call) -> tuple[str | None, str | None]:
    """The provider keys a provider's error may quote: the one the call sent, and the shared one."""
    return call.api_key, candidate.provider.settings.api_key


def _with_retry_after(error: UpstreamError, header: str | None) -> UpstreamError:
    if not header:
        return error
    try:
        seconds = float(header)
    except ValueError:  # the other form: an HTTP date
        try:
            seconds = email.utils.parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError):
            return error
    return dataclasses.replace(error, retry_after=max(0.0, seconds))
