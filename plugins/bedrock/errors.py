"""Bedrock's errors in the gateway's terms: client fault (answer at once) or server fault (try the next
target), in the OpenAI envelope.

An HTTP error's body is only ``{"message": ...}`` (bedrock/error-400-validation.json); its class
(``ValidationException``, ``ThrottlingException``...) travels in the ``x-amzn-ErrorType`` header (read by
``Bedrock.map_answer``; without it the status names the usual class). 400 ``ValidationException`` (an
unknown model id too) and 403 ``AccessDeniedException`` are the caller's; 429 ``ThrottlingException``,
a 400 ``ServiceQuotaExceededException`` (the account's quota: another target may have room), 424
``ModelError``, 408 ``ModelTimeout`` and every 5xx are the provider's, so the next target is tried. In a
stream, an exception message names its class in ``:exception-type`` (``throttlingException``...).
"""

from __future__ import annotations

from proxy.plugin import CallRejected, CatalogueError, Fault, UpstreamError


class RequestRejected(CallRejected):
    """The OpenAI body cannot be expressed for Converse. ``error`` is the 400 the client gets."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(
            UpstreamError(
                status=400, fault=Fault.CLIENT, message=message, type="invalid_request_error", param=param
            )
        )


class BedrockFailure(CatalogueError):
    """A catalogue or key-check call failed; ``error`` says how. A :class:`CatalogueError`: a sync that
    gets it keeps the last good catalogue."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


# status -> (the exception Bedrock documents for it, OpenAI error type)
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "invalid_request_error"),
    403: ("AccessDeniedException", "permission_error"),
    404: ("ResourceNotFoundException", "not_found_error"),
    408: ("ModelTimeoutException", "upstream_error"),
    424: ("ModelErrorException", "upstream_error"),
    429: ("ThrottlingException", "rate_limit_error"),
    500: ("InternalServerException", "upstream_error"),
    503: ("ServiceUnavailableException", "upstream_error"),
}
# a stream's :exception-type -> the status it stands for
_STREAM_EXCEPTIONS = {
    "validationException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
    "modelTimeoutException": 408,
    "modelStreamErrorException": 424,
    "throttlingException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}
CLIENT_STATUSES = frozenset({400, 401, 403, 404, 413, 422})


# Answered with a 4xx that is not the request's fault: the account's quota, which another target may have.
_SERVER_KINDS = frozenset({"ServiceQuotaExceededException", "ThrottlingException", "ModelNotReadyException"})


def error_of(status: int, message: object, kind: str | None = None) -> UpstreamError:
    known = _BY_STATUS.get(status)
    name = kind or (known[0] if known else None)
    text = message if isinstance(message, str) and message else f"Bedrock answered HTTP {status}"
    fault = Fault.CLIENT if status in CLIENT_STATUSES and name not in _SERVER_KINDS else Fault.SERVER
    return UpstreamError(
        status=status,
        fault=fault,
        message=f"{name}: {text}" if name else text,
        type=known[1] if known else "upstream_error",
        code=name,
    )


def stream_error_of(kind: str, message: object) -> UpstreamError:
    status = _STREAM_EXCEPTIONS.get(kind, 500)
    name = kind[:1].upper() + kind[1:]
    return error_of(status, message, name)
