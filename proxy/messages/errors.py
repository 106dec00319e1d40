"""Errors on ``/v1/messages`` in Anthropic's envelope, with the statuses the ``anthropic`` SDK maps to its
exception classes:

    400 invalid_request_error   BadRequestError          (and any other 4xx the SDK has no class for)
    401 authentication_error    AuthenticationError
    403 permission_error        PermissionDeniedError
    404 not_found_error         NotFoundError
    413 request_too_large       RequestTooLargeError (a 413 APIStatusError in older SDKs)
    429 rate_limit_error        RateLimitError           (a rate limit, a spent budget, or every target
                                                          tried was rate limited)
    500 api_error               InternalServerError      (502/504 keep their status: every target failed)
    529 overloaded_error        OverloadedError          (every target tried said it is overloaded)

Every :class:`~proxy.errors.GatewayError` keeps its status and message (the gateway's own words: a bad
key, a budget, a rate limit, an unknown model); only the body's shape changes. A stream broken after it
started ends with an ``event: error`` in the same shape.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.errors import GatewayError, UpstreamFailed

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# When every target failed with one of these, the client gets it rather than a 502: the SDK's own
# RateLimitError or OverloadedError, which it retries after a pause.
PASSED_ON = frozenset({429, 529})


def error_type(status: int) -> str:
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def envelope(status: int, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def error_response(error: GatewayError) -> web.Response:
    status = error.status
    if isinstance(error, UpstreamFailed) and error.provider_status in PASSED_ON:
        status = error.provider_status  # every target was rate limited, or overloaded: say so
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(error.retry_after + 0.999)))
    return web.Response(
        status=status,
        body=orjson.dumps(envelope(status, error.message)),
        content_type="application/json",
        headers=headers,
    )


def stream_error(message: str, status: int = 500) -> bytes:
    """The ``event: error`` that ends a stream broken after it started."""
    return b"event: error\ndata: " + orjson.dumps(envelope(status, message)) + b"\n\n"
