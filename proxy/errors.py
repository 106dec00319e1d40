"""The gateway's errors, translated into the OpenAI envelope at one edge (the error middleware).

    GatewayError                      status  code
    ├── InvalidRequest                400     invalid_request_error (param names the field)
    │   └── ExceedsLimit              400     exceeds_limit: the request alone exceeds a limit (TPM)
    ├── RequestTooLarge               413     request_too_large
    ├── InvalidApiKey                 401     invalid_api_key (one body for missing, unknown, revoked)
    ├── ModelNotFound                 404     model_not_found
    ├── ModelNotAllowed               403     model_not_allowed
    ├── RateLimited                   429     rate_limit_exceeded (+ Retry-After)
    ├── BudgetExceeded                429     budget_exceeded, type insufficient_quota
    ├── UpstreamFailed                502/504 upstream_error / upstream_timeout, lists the attempts
    ├── MeteringUnavailable           503     metering_unavailable
    ├── NotFound, MethodNotAllowed    404, 405 not_found, method_not_allowed
    ├── HttpError                     aiohttp's status, a code named after it (``forbidden``...)
    └── ProviderError                 (the provider's status) the provider's error, normalised

aiohttp's own HTTP exceptions (a body past ``client_max_size``, a file not found ...) are translated by
:func:`from_http`, so that they too answer with their status and this envelope.

SDKs map the status to their own classes (BadRequestError, AuthenticationError, NotFoundError,
RateLimitError, APIError ...). Messages tell a person what to do and never carry a secret.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.plugin import UpstreamError


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        out = dict(headers or {})
        if self.retry_after is not None:
            out["Retry-After"] = str(max(1, int(self.retry_after + 0.999)))
        return web.Response(
            status=self.status, body=orjson.dumps(self.body()), content_type="application/json", headers=out
        )


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request_error"


class ExceedsLimit(InvalidRequest):
    """A request that no wait can admit (its worst case alone exceeds a limit): not a 429, which clients
    retry."""

    code = "exceeds_limit"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class InvalidApiKey(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__(
            "Invalid API key. Send a valid gateway key as 'Authorization: Bearer <key>' "
            "(ask your gateway operator for one)."
        )


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ModelNotAllowed(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class UpstreamFailed(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        timeout: bool = False,
        retry_after: float | None = None,
        provider_status: int | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        # The status every target answered with, when they agree (a client of /v1/messages gets a 429 or
        # Anthropic's 529 overloaded back as such).
        self.provider_status = provider_status
        if timeout:
            self.status = 504
            self.code = "upstream_timeout"


class MeteringUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "metering_unavailable"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class ProviderError(GatewayError):
    """A provider's client-fault answer, passed on with its status and normalised body."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message, param=error.param, retry_after=error.retry_after)
        self.status = error.status
        self.type = error.type
        self.code = error.code


class HttpError(GatewayError):
    """An aiohttp HTTP error with no class of ours: its status, and a code named after its reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = "invalid_request_error" if status < 500 else "server_error"
        self.code = "_".join(reason.lower().replace("-", " ").split()) or "http_error"


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: RequestTooLarge,
}


def from_http(exc: web.HTTPException) -> GatewayError:
    """aiohttp's HTTP error ``exc`` (status 400 or more) as ours: the same status, a clear code."""
    text = exc.text or ""
    # aiohttp's default text is "<status>: <reason>"; a handler's own text says more
    message = exc.reason if text in ("", f"{exc.status}: {exc.reason}") else text
    message = message.rstrip(".") + "."
    known = _BY_STATUS.get(exc.status)
    return known(message) if known is not None else HttpError(exc.status, exc.reason, message)
