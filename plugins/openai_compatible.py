"""The shared base for every provider that speaks OpenAI's wire format (direct or aggregator).

Most providers only declare their differences on top of this: a name, a type, a default base URL and
extra headers. Usage is read from the last usage object (``usage`` on the body or on any stream chunk);
errors are read from the ``{"error": {...}}`` envelope that OpenAI, one-api, new-api and OpenRouter all
use, with field types that vary (OpenRouter's ``code`` is a number).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import aiohttp
import orjson

from proxy.plugin import (
    UNIT_ENDPOINTS,
    Call,
    CatalogueError,
    Endpoint,
    Fault,
    JSONObject,
    ModelInfo,
    Provider,
    Reply,
    StreamReader,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from proxy.upstream.sse import SSEEvent

# Statuses that are the caller's doing: another target would answer the same. 402 is OpenRouter's
# "insufficient credits" (openrouter/error-402-insufficient-credits.json), returned at once.
CLIENT_FAULT_STATUSES = frozenset({400, 401, 402, 403, 404, 405, 409, 413, 415, 422})

# one-api answers some errors with HTTP 200 (oneapi/one-api-retrieve-model-not-found-http200.json): the
# code tells which status it stands for.
_STATUS_OF_CODE = {
    "model_not_found": 404,
    "invalid_api_key": 401,
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
    "insufficient_quota": 429,
    "rate_limit_exceeded": 429,
}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(obj: object) -> Usage | None:
    """Read an OpenAI-style usage object; DeepSeek's and OpenRouter's extra fields included."""
    if not isinstance(obj, dict):
        return None
    prompt_details = obj.get("prompt_tokens_details")
    completion_details = obj.get("completion_tokens_details")
    cached = cache_write = reasoning = 0
    if isinstance(prompt_details, dict):
        cached = _int(prompt_details.get("cached_tokens"))
        cache_write = _int(prompt_details.get("cache_write_tokens"))
    if not cached:
        cached = _int(obj.get("prompt_cache_hit_tokens"))  # DeepSeek's own name for cache reads
    if isinstance(completion_details, dict):
        reasoning = _int(completion_details.get("reasoning_tokens"))
    cost = obj.get("cost")
    return Usage(
        prompt_tokens=_int(obj.get("prompt_tokens")),
        completion_tokens=_int(obj.get("completion_tokens")),
        cached_tokens=cached,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        provider_cost_usd=float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
    )


def error_from_envelope(status: int, obj: object, fault: Fault | None = None) -> UpstreamError | None:
    """``{"error": {...}}`` (or ``{"error": "text"}``) -> UpstreamError; None if there is no error."""
    if isinstance(obj, dict) and obj.get("object") == "error" and "error" not in obj:
        # vLLM and Mistral put the fields at the top; Mistral's ``message`` may be pydantic's detail list
        obj = {"error": {**obj, "message": _text_of(obj.get("message"))}}
    if not isinstance(obj, dict) or "error" not in obj or obj["error"] in (None, {}, ""):
        return None
    err = obj["error"]
    message: object
    etype: object
    code: object
    param: object
    if isinstance(err, str):
        message, etype, code, param = err, None, None, None
    elif isinstance(err, dict):
        message = err.get("message")
        etype, code, param = err.get("type"), err.get("code"), err.get("param")
    else:
        return None
    code_text = (
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) and code != "" else None
    )
    if status == 200:
        status = _STATUS_OF_CODE.get(code_text or "", 502)
    if fault is None:
        fault = Fault.CLIENT if status in CLIENT_FAULT_STATUSES else Fault.SERVER
    return UpstreamError(
        status=status,
        fault=fault,
        message=str(message) if message else f"the provider answered HTTP {status}",
        type=etype if isinstance(etype, str) and etype else "upstream_error",
        code=code_text,
        param=param if isinstance(param, str) and param else None,
    )


def _text_of(message: object) -> str | None:
    """A message that may be a string or a structure (Mistral's pydantic ``detail`` list), as text."""
    if message is None or isinstance(message, str):
        return message
    if isinstance(message, dict) and isinstance(message.get("detail"), list):
        parts = [
            f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}"
            for d in message["detail"]
            if isinstance(d, dict)
        ]
        if parts:
            return "; ".join(parts)
    return orjson.dumps(message).decode()


class OpenAIStreamReader(StreamReader):
    """Relays chunks unchanged, taps the last usage object, drops the usage-only chunk (``choices: []``)
    when the client did not ask for it (the gateway always asks upstream), and turns an error chunk
    into ``error`` (openai/chat-stream-midstream-error.sse, openrouter/chat-stream-midstream-error.sse).

    Only chunks that can matter are parsed (those mentioning usage, an error or a finish reason); the
    rest pass through as bytes, their output counted by :func:`output_chars`. The answer is ``complete``
    once every requested choice has a finish reason and the usage arrived (the gateway always asks for
    it), or the usage-only chunk arrived: a stream cut after that lost nothing but its end marker. One
    cut after the finish reason but before the usage (quirks/truncated-mid-event.sse) is not whole: the
    usage is lost, and so may be the end of the answer.
    """

    def __init__(self, include_usage: bool, choices: int = 1, usage_in: str | None = None) -> None:
        super().__init__()
        self.include_usage = include_usage
        self.choices = choices
        self.usage_in = usage_in  # a vendor's object that carries the usage too (Groq: ``x_groq``)
        self.finished_choices: set[int] = set()
        # The chunks' data, kept (not copied) while it is small, so that their output is counted only if
        # the usage never comes (it usually does: the gateway always asks for it); past HELD_FOR_COUNTING
        # bytes they are counted and counting goes on chunk by chunk. None once the usage arrived.
        self._held: list[bytes] | None = []
        self._held_bytes = 0

    def on_event(self, event: SSEEvent) -> bytes | None:
        data = event.data
        if data is None:
            return event.raw  # comments only: keep-alives such as ": OPENROUTER PROCESSING"
        if data == b"[DONE]":
            self.finished = self.complete = True
            return event.raw
        held = self._held
        if held is not None:
            held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes > HELD_FOR_COUNTING:
                self.counted_output()  # in batches, however long the stream
        if not (
            event.event == "error"
            or b'"error"' in data
            or _has_value(data, b'"usage"')
            or _has_value(data, b'"finish_reason"')
        ):
            return event.raw
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if event.event == "error":
            self.error = error_from_envelope(502, obj, Fault.SERVER) or UpstreamError(
                502, Fault.SERVER, "the provider reported an error in the stream"
            )
            return None
        if not isinstance(obj, dict):
            return event.raw
        error = error_from_envelope(502, obj, Fault.SERVER)
        if error is not None:
            self.error = error
            return None
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    index = choice.get("index")
                    self.finished_choices.add(index if isinstance(index, int) else 0)
        usage = usage_from(obj.get("usage"))
        if usage is None and self.usage_in is not None:
            extension = obj.get(self.usage_in)
            usage = usage_from(extension.get("usage")) if isinstance(extension, dict) else None
        if usage is not None:
            # Last usage object wins: Gemini repeats it on every chunk, Groq sends it twice
            # (gemini/openai-compat-stream-usage-every-chunk.sse, groq/chat-stream-usage-twice.sse).
            self.usage = usage
            self._held = None  # the provider's figures: no estimate will be needed
        # Whole once every choice finished and the usage is in (on the finish chunk for DeepSeek,
        # deepseek/chat-stream-usage-on-finish-chunk.sse), or the usage-only chunk came.
        if self.usage is not None and (choices == [] or len(self.finished_choices) >= self.choices):
            self.complete = True
        if usage is not None and choices == [] and not self.include_usage:
            return None
        return event.raw

    def counted_output(self) -> int:
        held = self._held
        if held:
            self.output_chars += sum(output_chars(data) for data in held)
            held.clear()
            self._held_bytes = 0
        return self.output_chars


async def fetch_json(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> object:
    """GET a catalogue: a non-2xx status, a body that is not JSON (an HTML edge page, a truncated body)
    or a JSON value that is not an object raises :class:`CatalogueError`; nothing partial is returned."""
    async with http.get(url, headers=headers) as resp:
        body = await resp.read()
        if resp.status >= 300:
            raise CatalogueError(f"GET {url} answered HTTP {resp.status}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        kind = "an HTML page" if body.lstrip()[:1] == b"<" else f"{len(body)} bytes that are not JSON"
        raise CatalogueError(f"GET {url} answered {kind}") from None
    if not isinstance(payload, dict):
        raise CatalogueError(f"GET {url} answered JSON that is not an object")
    return payload


def openai_model_list(payload: object) -> list[ModelInfo]:
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise CatalogueError("the model list has no 'data' array")
    out: list[ModelInfo] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            owner = item.get("owned_by")
            context = number(item.get("context_length")) or number(item.get("max_model_len"))
            out.append(
                ModelInfo(
                    id=item["id"],
                    owned_by=owner if isinstance(owner, str) else None,
                    context_length=int(context) if context else None,
                )
            )
    return out


def number(value: object) -> float | None:
    """A catalogue number that may arrive as a JSON number or a string (``"0.00003"``); None if absent,
    negative or unreadable (OpenRouter's ``"-1"`` marks a variable price: no fixed price to pin)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and value >= 0 and value == value and value != float("inf"):
        return float(value)
    return None


# The JSON string fields that carry output: text (and reasoning_content, by the same suffix), reasoning,
# refusals, tool-call arguments, and the legacy completions' text.
HELD_FOR_COUNTING = 64 * 1024  # bytes of chunk data a stream keeps for counting its output later


_OUTPUT_FIELDS = (b'content":"', b'reasoning":"', b'refusal":"', b'arguments":"', b'"text":"')


def output_chars(data: bytes, fields: tuple[bytes, ...] = _OUTPUT_FIELDS) -> int:
    """Characters of the output fields' strings in a chunk or reply, as sent (JSON escapes count as
    written): found with a few scans of the bytes, never parsed, so that counting a stream chunk
    allocates nothing. The estimate of an answer whose provider reported no usage."""
    total = 0
    for field in fields:
        at = data.find(field)
        while at >= 0:
            start = at + len(field)
            end = _string_end(data, start)
            total += end - start
            at = data.find(field, end)
    return total


def _string_end(data: bytes, start: int) -> int:
    """The index of the quote closing the JSON string that starts at ``start`` (the end of ``data`` if
    it is cut): a quote preceded by an odd number of backslashes is escaped."""
    end = data.find(b'"', start)
    while end > 0:
        back = end - 1
        while back >= start and data[back] == 0x5C:
            back -= 1
        if (end - 1 - back) % 2 == 0:
            return end
        end = data.find(b'"', end + 1)
    return len(data)


def _has_value(data: bytes, key: bytes) -> bool:
    """A cheap test before parsing: does ``key`` appear with a value other than null? (OpenAI's 2025
    format sends ``"usage":null`` and ``"finish_reason":null`` on every chunk.)"""
    at = data.find(key)
    if at < 0:
        return False
    after = data[at + len(key) : at + len(key) + 8].lstrip(b": \t")
    return not after.startswith(b"null") or data.find(key, at + 1) >= 0


def units_from(endpoint: Endpoint, obj: JSONObject) -> Usage:
    """The usage of an answer metered in its own units (``units`` None: the answer did not say).

    - images: one unit per ``data`` entry; gpt-image-1 adds ``usage`` in image tokens (input_tokens,
      output_tokens), read as prompt and completion tokens;
    - transcriptions and translations: ``usage`` ``{"type": "duration", "seconds": N}``, else a verbose_json
      ``duration`` rounded up (openai/audio-transcriptions-verbose-json.json has both), or
      ``{"type": "tokens", ...}`` from gpt-4o-transcribe; the plain json answer has none
      (openai/audio-transcriptions.json);
    - rerank: Cohere's ``meta.billed_units.search_units``, else one search; a ``usage.total_tokens`` (vLLM,
      Jina) is read as prompt tokens;
    - moderations: nothing to count (openai/moderations.json has no usage).
    """
    usage = obj.get("usage")
    tokens = usage if isinstance(usage, dict) else {}
    out = Usage(
        prompt_tokens=_int(tokens.get("input_tokens")) or _int(tokens.get("prompt_tokens")),
        completion_tokens=_int(tokens.get("output_tokens")) or _int(tokens.get("completion_tokens")),
    )
    if endpoint is Endpoint.IMAGES:
        data = obj.get("data")
        out.units = len(data) if isinstance(data, list) else None
    elif endpoint in (Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS):
        seconds = number(tokens.get("seconds")) if tokens.get("type") == "duration" else None
        if seconds is None:
            seconds = number(obj.get("duration"))
        out.units = math.ceil(seconds) if seconds is not None else None
    elif endpoint is Endpoint.RERANK:
        meta = obj.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        searches = number(billed.get("search_units")) if isinstance(billed, dict) else None
        out.units = math.ceil(searches) if searches is not None else 1
        if not out.prompt_tokens:
            out.prompt_tokens = _int(tokens.get("total_tokens"))
    elif endpoint is Endpoint.MODERATIONS:
        out.units = 0
    return out


class OpenAICompatible(Provider):
    """Any server with OpenAI's ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``, and
    the OpenAI family's other endpoints (moderations, images, audio) and ``/v1/rerank`` (vLLM, Jina and
    Cohere-compatible servers): which a given server has is the routing table's choice."""

    plugin_name = "openai_compatible"
    requires_key = False  # a local vLLM/Ollama takes anonymous calls; set api_key when yours does not
    # Vendors' differences, as data (each declaration in plugins/<vendor>.py sets what differs):
    stream_options: ClassVar[bool] = True  # False: the vendor refuses the field (it sends usage anyway)
    renamed: ClassVar[Mapping[str, str]] = {}  # a client's parameter -> the vendor's name for it
    usage_in: ClassVar[str | None] = None  # an object of the stream's chunks that carries usage too
    endpoints = Provider.endpoints | UNIT_ENDPOINTS

    def build_request(self, call: Call) -> UpstreamRequest:
        headers = self.auth_headers(call.api_key)
        if call.upload is not None:  # multipart: the client's form, streamed, with the upstream model
            headers["Content-Type"] = call.upload.content_type
            headers["Accept"] = "application/json"
            url = f"{self.base_url}/{call.endpoint}"
            return UpstreamRequest(url, headers, call.upload.for_model(call.model))
        body = dict(call.body)
        body["model"] = call.model
        for name, theirs in self.renamed.items():
            if name in body and theirs not in body:
                body[theirs] = body.pop(name)
        if not self.stream_options:
            body.pop("stream_options", None)  # refused by the vendor (422), whoever set it
        elif call.stream:
            options = body.get("stream_options")
            merged = dict(options) if isinstance(options, dict) else {}
            merged["include_usage"] = True  # always meter from the provider's own numbers
            body["stream_options"] = merged
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "text/event-stream" if call.stream else "*/*" if call.raw else "application/json"
        return UpstreamRequest(f"{self.base_url}/{call.endpoint}", headers, orjson.dumps(body))

    def read_reply(self, call: Call, body: bytes) -> Reply | UpstreamError:
        if call.upload is not None and body.lstrip()[:1] != b"{":
            # response_format text, srt or vtt: the transcript itself, no usage (the gateway estimates)
            return Reply(body, None, content_type="text/plain; charset=utf-8")
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return UpstreamError(
                502, Fault.SERVER, f"provider {self.name!r} answered with a body that is not JSON"
            )
        if not isinstance(obj, dict):
            return UpstreamError(502, Fault.SERVER, f"provider {self.name!r} answered with unexpected JSON")
        if "error" in obj and not any(k in obj for k in ("choices", "data", "object")):
            error = error_from_envelope(200, obj)
            if error is not None:
                return error
        if call.endpoint in UNIT_ENDPOINTS:
            return Reply(body, units_from(call.endpoint, obj))
        usage = usage_from(obj.get("usage"))
        return Reply(body, usage, output_chars=0 if usage is not None else output_chars(body))

    def open_stream(self, call: Call) -> StreamReader:
        n = call.body.get("n")
        return OpenAIStreamReader(call.include_usage, n if isinstance(n, int) and n > 1 else 1, self.usage_in)

    def map_error(self, status: int, content_type: str, body: bytes) -> UpstreamError:
        fault = Fault.CLIENT if status in CLIENT_FAULT_STATUSES else Fault.SERVER
        obj: object = None
        if "json" in content_type or body[:1] in (b"{", b"["):
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
        error = error_from_envelope(status, obj, fault)
        if error is not None:
            return self.refine(error, obj)
        if "html" in content_type or body.lstrip()[:1] == b"<":
            message = (
                f"provider {self.name!r} answered HTTP {status} with an HTML page (an edge or proxy error)"
            )
        else:
            message = f"provider {self.name!r} answered HTTP {status}"
        return UpstreamError(status, fault, message)

    def refine(self, error: UpstreamError, body: object) -> UpstreamError:
        """Hook for a provider's own error quirks; the base keeps the error as read."""
        return error

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        """OpenAI's ``GET /models``: ids and owners only (openai/models-list.json has no prices); a
        ``context_length`` is kept where a server adds one (vLLM's ``max_model_len`` too)."""
        payload = await fetch_json(http, f"{self.base_url}/models", self.auth_headers(self.settings.api_key))
        return openai_model_list(payload)

    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool:
        async with http.get(f"{self.base_url}/models", headers=self.auth_headers(api_key)) as resp:
            if resp.status in (401, 403):
                return False
            resp.raise_for_status()
            return True


Plugin = OpenAICompatible
