"""Anthropic's errors in the gateway's terms: client fault (answer at once) or server fault (try the next
target), in the OpenAI envelope.

Raised, not returned: :class:`RequestRejected` from ``build_request`` when an OpenAI body cannot be expressed
for Anthropic, :class:`AnthropicFailure` from ``list_models``/``validate_key``. Both carry ``error``, an
:class:`~proxy.plugin.UpstreamError`.
"""

from __future__ import annotations

from proxy.plugin import CallRejected, Fault, JSONObject, UpstreamError


class RequestRejected(CallRejected):
    """The OpenAI body cannot be expressed for Anthropic. ``error`` is the 400 the client gets."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(
            UpstreamError(
                status=400, fault=Fault.CLIENT, message=message, type="invalid_request_error", param=param
            )
        )


class AnthropicFailure(RuntimeError):
    """A catalogue or key-check call failed; ``error`` says how (the host logs it or raises an alert)."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


# Anthropic error types (https://docs.anthropic.com/en/api/errors) -> status, fault and OpenAI type.
_ERROR_TYPES: dict[str, tuple[int, Fault, str]] = {
    "invalid_request_error": (400, Fault.CLIENT, "invalid_request_error"),
    "authentication_error": (401, Fault.CLIENT, "authentication_error"),
    "permission_error": (403, Fault.CLIENT, "permission_error"),
    "billing_error": (402, Fault.CLIENT, "insufficient_quota"),
    "not_found_error": (404, Fault.CLIENT, "not_found_error"),
    "request_too_large": (413, Fault.CLIENT, "invalid_request_error"),
    "rate_limit_error": (429, Fault.SERVER, "rate_limit_error"),
    "api_error": (500, Fault.SERVER, "upstream_error"),
    "overloaded_error": (529, Fault.SERVER, "upstream_error"),
}


def error_of(error: JSONObject, status: int | None = None) -> UpstreamError:
    """An Anthropic ``error`` object (from a body or a stream event) -> :class:`UpstreamError`.

    The HTTP status, when there is one, decides the fault: 429, 5xx and 529 are the provider's, other 4xx
    the caller's. A prompt over the context window is a plain ``invalid_request_error`` with free text
    (``anthropic/error-400-prompt-too-long.json``); it gets OpenAI's ``context_length_exceeded`` code.
    """
    kind = error.get("type")
    known = _ERROR_TYPES.get(kind) if isinstance(kind, str) else None
    code_status, fault, openai_type = known or (status or 500, Fault.SERVER, "upstream_error")
    status = status or code_status
    if status == 429 or status >= 500:
        fault = Fault.SERVER
    elif 400 <= status < 500:
        fault = Fault.CLIENT
    message = error.get("message")
    text = message if isinstance(message, str) and message else f"Anthropic returned {kind or status}"
    code = kind if isinstance(kind, str) else None
    if "prompt is too long" in text:
        code = "context_length_exceeded"
    return UpstreamError(status=status, fault=fault, message=text, type=openai_type, code=code)
