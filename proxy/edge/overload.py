"""Overload protection: a cap on the data-plane requests one process serves at once.

Past ``server.max_concurrency`` a request is answered at once with 503 ``overloaded`` and ``Retry-After``
(the OpenAI envelope, which SDKs retry with backoff), before its body is read or anything is reserved: a
fast refusal costs microseconds, where queueing would let latency and memory grow without bound. Only the
data plane (``/v1/...`` POSTs) counts; health checks, metrics and the admin API stay reachable.

Slow clients are bounded elsewhere: the body read (``server.body_timeout``, :mod:`proxy.dataplane.body`)
and the stream writes (``server.write_timeout``, :mod:`proxy.dataplane.relay`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.errors import GatewayError
from proxy.gateway import METRICS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRY_AFTER = 1.0  # seconds: most overloads are bursts; SDKs add their own backoff on top


class Overloaded(GatewayError):
    status = 503
    type = "server_error"
    code = "overloaded"


def limit_concurrency(max_concurrency: int) -> Middleware:
    """The middleware (after ``edge``, so a refusal is logged and counted like any answer)."""
    in_flight = 0

    @web.middleware
    async def overload(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if not max_concurrency or request.method != "POST" or not request.path.startswith("/v1/"):
            return await handler(request)
        if in_flight >= max_concurrency:
            request.app[METRICS].overloaded.inc()
            raise Overloaded(
                f"The gateway is at capacity ({max_concurrency} requests in progress); retry shortly.",
                retry_after=RETRY_AFTER,
            )
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return overload
