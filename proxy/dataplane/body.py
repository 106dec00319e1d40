"""Reading a data-plane request body: bounded, parsed once with orjson, only the routing and metering
fields looked at. Everything else passes through to the provider untouched.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypeVar

import orjson
from aiohttp import web

from proxy.errors import GatewayError, InvalidRequest, RequestTooLarge
from proxy.plugin import UNIT_ENDPOINTS, Endpoint, JSONObject

T = TypeVar("T")

# Fields that would let a caller choose where traffic goes (LiteLLM honours several of them). The routing
# table alone decides, so a body carrying one is refused rather than silently forwarded.
REDIRECTING_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "custom_llm_provider",
        "azure_endpoint",
        "organization",
    }
)


# orjson parses up to 1024 levels of nesting but serialises only 254: a body between the two would pass
# here and fail when the request is built for the provider. Refused here instead, as the client's fault.
MAX_DEPTH = 254
MAX_MODEL_NAME = 256  # characters
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"  # what /v1/moderations routes without a model
_MAX_TOKENS = ("max_tokens", "max_completion_tokens")
_WITH_MESSAGES = frozenset({Endpoint.CHAT, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS})


class BodyTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class ClientBody:
    obj: JSONObject
    size: int
    model: str
    stream: bool
    include_usage: bool  # the client asked for the usage chunk (stream_options.include_usage)
    max_tokens: int | None
    n: int


async def read_body(request: web.Request, endpoint: Endpoint, limit: int, within: float = 0.0) -> ClientBody:
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"Request body is {request.content_length} bytes; the limit is {limit} bytes.")
    raw: bytes | bytearray
    if request.content.is_eof():
        # The usual case: the whole (small) body came with the headers. Nothing to wait for or bound.
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked bodies have no Content-Length to check first
            raise RequestTooLarge(f"Request body is larger than the limit of {limit} bytes.") from None
        if len(raw) > limit:
            raise RequestTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    else:
        raw = await _read_slowly(request, limit, within)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON ({exc.msg} at position {exc.pos})."
        ) from None
    if not isinstance(obj, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # only then can it be too deep: check for real
        _check_depth(obj)
    for name in REDIRECTING_FIELDS.intersection(obj):
        raise InvalidRequest(
            f"The field '{name}' is not accepted: the gateway's routing table decides where requests go.",
            param=name,
        )
    if endpoint is Endpoint.MODERATIONS and obj.get("model") is None:
        obj["model"] = DEFAULT_MODERATION_MODEL  # the one optional model: OpenAI picks its latest
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_NAME or not model.isprintable():
        # It becomes an upstream request's field, a response header and a ledger value: a control
        # character (CR/LF, NUL, ESC) or a name of kilobytes has no business in any of them.
        raise InvalidRequest(
            f"'model' must be at most {MAX_MODEL_NAME} printable characters (no control characters).",
            param="model",
        )
    stream = _optional(obj, "stream", bool, False)
    if stream and endpoint is Endpoint.EMBEDDINGS:
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream")
    options = obj.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    # Both fields are checked: a wrong-typed max_tokens beside a valid max_completion_tokens used to pass
    # through unchecked, and the error named max_tokens even when max_completion_tokens was the bad one.
    max_tokens: int | None = None
    fields = ("max_output_tokens",) if endpoint is Endpoint.RESPONSES else _MAX_TOKENS
    for field in fields:  # the newer name wins when both are given
        value = _optional(obj, field, int, None)
        if value is not None and value < 1:
            raise InvalidRequest(f"'{field}' must be at least 1.", param=field)
        max_tokens = value if value is not None else max_tokens
    n = _optional(obj, "n", int, 1)
    if n < 1 or n > 128:
        raise InvalidRequest("'n' must be between 1 and 128.", param="n")
    if endpoint in _WITH_MESSAGES:
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    elif endpoint is Endpoint.COMPLETIONS and "prompt" not in obj:
        raise InvalidRequest("'prompt' is required.", param="prompt")
    elif endpoint is Endpoint.EMBEDDINGS and "input" not in obj:
        raise InvalidRequest("'input' is required.", param="input")
    elif endpoint in UNIT_ENDPOINTS:
        _check_unit_body(endpoint, obj, stream)
    return ClientBody(obj, len(raw), model, stream, include_usage, max_tokens, n)


# What each endpoint metered in its own units needs: the field its units are counted from.
_REQUIRED = {
    Endpoint.MODERATIONS: "input",
    Endpoint.IMAGES: "prompt",
    Endpoint.SPEECH: "input",
    Endpoint.RERANK: "query",
}


def _check_unit_body(endpoint: Endpoint, obj: JSONObject, stream: bool) -> None:
    field = _REQUIRED.get(endpoint)
    if field is not None and field not in obj:
        raise InvalidRequest(f"'{field}' is required.", param=field)
    if stream:  # gpt-image-1's partial images: an event stream this gateway does not meter yet
        raise InvalidRequest(f"/v1/{endpoint.value} cannot be streamed through this gateway.", param="stream")
    if endpoint is Endpoint.SPEECH and not isinstance(obj["input"], str):
        raise InvalidRequest("'input' must be a string.", param="input")
    if endpoint is Endpoint.RERANK and not isinstance(obj.get("documents"), list):
        raise InvalidRequest("'documents' is required and must be an array.", param="documents")


def _check_depth(obj: JSONObject) -> None:
    """Refuse a body nested deeper than the gateway can forward (orjson's serialisation limit)."""
    try:
        orjson.dumps(obj)
    except orjson.JSONEncodeError:
        raise InvalidRequest(
            f"The request body is nested too deep: at most {MAX_DEPTH} levels of arrays and objects."
        ) from None


async def _read_slowly(request: web.Request, limit: int, within: float) -> bytearray:
    raw = bytearray()
    try:
        # A client trickling its body would hold a connection and a concurrency slot for ever.
        async with asyncio.timeout(within or None):
            async for chunk in request.content.iter_chunked(65536):
                raw += chunk
                if len(raw) > limit:
                    raise RequestTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    except TimeoutError:
        raise BodyTimeout(f"The request body did not arrive within {within:g} seconds.") from None
    return raw


def _optional(obj: JSONObject, name: str, kind: type[T], default: T) -> T:
    value = obj.get(name)
    if value is None:
        return default
    # bool is an int in Python; JSON true is not a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        type_name = {bool: "a boolean", int: "an integer"}.get(kind, kind.__name__)
        raise InvalidRequest(f"'{name}' must be {type_name}.", param=name)
    return value
