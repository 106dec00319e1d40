"""Gemini's errors in the gateway's terms: client fault (answer at once) or server fault (try the next
target), in the OpenAI envelope.

Gemini answers with ``google.rpc.Status``: ``{"error": {"code", "message", "status", "details": [...]}}``.
A bad key is HTTP 400 ``INVALID_ARGUMENT``, not 401: only ``details[].reason`` ``API_KEY_INVALID`` tells
(gemini/error-400-api-key-invalid.json); it becomes a 401. ``RESOURCE_EXHAUSTED`` (429) carries its wait in
``details[RetryInfo].retryDelay`` (``"21s"``, gemini/error-429-resource-exhausted.json), not in a header.
"""

from __future__ import annotations

import re

from proxy.plugin import CallRejected, CatalogueError, Fault, JSONObject, UpstreamError


class RequestRejected(CallRejected):
    """The OpenAI body cannot be expressed for Gemini. ``error`` is the 400 the client gets."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(
            UpstreamError(
                status=400, fault=Fault.CLIENT, message=message, type="invalid_request_error", param=param
            )
        )


class GeminiFailure(CatalogueError):
    """A catalogue or key-check call failed; ``error`` says how. A :class:`CatalogueError`: a sync that
    gets it keeps the last good catalogue."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


# google.rpc status names -> (HTTP status, OpenAI error type)
_STATUSES: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "CANCELLED": (499, "upstream_error"),
    "INTERNAL": (500, "upstream_error"),
    "UNAVAILABLE": (503, "upstream_error"),
    "DEADLINE_EXCEEDED": (504, "upstream_error"),
}
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_EXPIRED"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _details(error: JSONObject) -> list[JSONObject]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def is_bad_key(error: JSONObject) -> bool:
    return any(d.get("reason") in _KEY_REASONS for d in _details(error))


def error_of(error: JSONObject, status: int | None = None) -> UpstreamError:
    """A ``google.rpc.Status`` error object (from a body or a stream event) -> :class:`UpstreamError`.
    The HTTP status decides the fault (429 and 5xx the provider's, other 4xx the caller's), except that a
    rejected key is always a 401."""
    name = error.get("status")
    known = _STATUSES.get(name) if isinstance(name, str) else None
    code = error.get("code")
    status = status or (code if isinstance(code, int) and 400 <= code < 600 else None) or 502
    openai_type = known[1] if known else "upstream_error"
    message = error.get("message")
    text = message if isinstance(message, str) and message else f"Gemini returned {name or status}"
    retry_after: float | None = None
    error_code = name.lower() if isinstance(name, str) else None
    if is_bad_key(error):
        status, openai_type, error_code = 401, "authentication_error", "invalid_api_key"
    for detail in _details(error):
        delay = detail.get("retryDelay")
        match = _DURATION.match(delay) if isinstance(delay, str) else None
        if match:
            retry_after = float(match.group(1))
    fault = Fault.SERVER if status == 429 or status >= 500 else Fault.CLIENT
    return UpstreamError(
        status=status, fault=fault, message=text, type=openai_type, code=error_code, retry_after=retry_after
    )
