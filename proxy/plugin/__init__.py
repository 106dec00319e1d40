"""The provider plugin contract: what a plugin declares and the few verbs the gateway calls.

A plugin is a small class on :class:`Provider`. The gateway owns the HTTP session, timeouts, fallback and
metering; a plugin only says how to talk to its provider:

- ``build_request``: the upstream URL, headers and body for one call (auth set here, never the client's).
- ``read_reply``: a non-streaming 2xx body -> the body for the client and the provider's usage, or an
  :class:`UpstreamError` when the provider reports an error with HTTP 200 (one-api does).
- ``open_stream``: a :class:`StreamReader` that sees each upstream SSE event and says what the client gets.
- ``map_error``: a non-2xx answer -> :class:`UpstreamError`, classified client fault (stop) or server fault
  (try the next target); ``map_answer`` is the same with the answer's headers.
- ``list_models`` / ``validate_key``: the catalogue and a cheap authenticated call.

A plugin's own settings (Azure's ``api_version``, Bedrock's ``region``...) are named in
``Provider.plugin_settings`` and arrive in ``ProviderSettings.options``; its constructor raises
``ValueError`` for settings it cannot work with, which the config reports under the provider's path.

Plugins import only this module, :mod:`proxy.upstream.sse` and :mod:`proxy.upstream.body` from ``proxy``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import aiohttp

from proxy.upstream.body import BodyStream
from proxy.upstream.sse import SSEEvent

JSONObject = dict[str, object]


class ProviderType(enum.StrEnum):
    AGGREGATOR = "aggregator"
    DIRECT = "direct"


class Endpoint(enum.StrEnum):
    """The OpenAI endpoints the data plane serves; the value is the path under ``/v1/``."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    MESSAGES = "messages"  # Anthropic's Messages API, for inbound Anthropic clients
    COUNT_TOKENS = "messages/count_tokens"
    MODERATIONS = "moderations"
    IMAGES = "images/generations"
    SPEECH = "audio/speech"
    TRANSCRIPTIONS = "audio/transcriptions"
    TRANSLATIONS = "audio/translations"
    RERANK = "rerank"


# The OpenAI family's other endpoints: a provider serves them only when its plugin declares them (the
# default ``Provider.endpoints`` leaves them out). They are metered in their own units (``Usage.units``).
OPENAI_FAMILY = frozenset(
    {Endpoint.MODERATIONS, Endpoint.IMAGES, Endpoint.SPEECH, Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS}
)
UNIT_ENDPOINTS = OPENAI_FAMILY | {Endpoint.RERANK}
UPLOAD_ENDPOINTS = frozenset({Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS})  # multipart/form-data


class Fault(enum.StrEnum):
    CLIENT = "client"  # the caller's fault: answer at once, never try another target
    SERVER = "server"  # the provider's fault: the next target may succeed


@dataclass(slots=True)  # not frozen: built once per request, and a frozen __init__ costs several times more
class Usage:
    """Token counts in OpenAI's meaning: ``prompt_tokens`` includes cached and cache-write tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    provider_cost_usd: float | None = None  # the provider's own figure (OpenRouter ``usage.cost``)
    # The endpoint's own unit (UNIT_ENDPOINTS): images generated, audio seconds, characters of speech
    # input, rerank searches; None when the answer did not say (the gateway then estimates).
    units: int | None = None


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """A provider's error, normalised to the OpenAI envelope.

    ``status`` is what the client gets for a client fault; for server faults the gateway picks 502/504
    once every target has failed.
    """

    status: int
    fault: Fault
    message: str
    type: str = "upstream_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def envelope(self) -> JSONObject:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model of a provider's catalogue. Prices are USD per 1M tokens (the price table's unit)."""

    id: str
    context_length: int | None = None
    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    features: tuple[str, ...] = ()
    owned_by: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """What the config gives a plugin instance. ``api_key`` is the shared key (None: BYOK only)."""

    name: str
    base_url: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # The plugin's own settings (``api_version``, ``region``...), by name, as given; only the names the
    # plugin declares in ``Provider.plugin_settings`` are accepted by the config.
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    """One upstream call as the gateway asks for it.

    ``body`` is the client's parsed JSON object; a plugin copies before changing it, since the same call may
    go to several targets. ``include_usage`` tells whether the client asked for the usage chunk.
    """

    endpoint: Endpoint
    body: JSONObject
    model: str
    stream: bool
    include_usage: bool
    api_key: str | None
    deployment: str | None = None  # the route target's ``deployment`` (Azure), else None
    # A multipart upload (UPLOAD_ENDPOINTS): the body is streamed from the client, never ``body``.
    upload: Upload | None = None
    # The answer is relayed as bytes as they arrive (audio from /v1/audio/speech), never read whole.
    raw: bool = False

    # Client headers a native call passes on (``anthropic-version``, ``anthropic-beta`` on /v1/messages);
    # the plugin decides where they go, and its own configured headers win.
    headers: Mapping[str, str] = field(default_factory=dict)


class Upload(Protocol):
    """A client's multipart upload, streamed to the provider as it arrives (never held whole)."""

    content_type: str  # the client's ``multipart/form-data; boundary=...``

    def for_model(self, model: str) -> BodyStream:
        """The body to send, its ``model`` field set to ``model`` (the route's upstream name)."""
        ...


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes | BodyStream


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful non-streaming answer: the exact bytes for the client, and the usage read from them."""

    body: bytes
    usage: Usage | None
    content_type: str = "application/json"
    # Without usage: characters of the answer's text and tool-call arguments (the gateway's estimate).
    output_chars: int = 0


class CallRejected(ValueError):
    """Raised by ``build_request`` when the request cannot be expressed for this provider (a parameter
    it does not support). ``error`` is the client-fault answer; the gateway returns it at once."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


class CatalogueError(Exception):
    """Raised by ``list_models`` when the provider's catalogue cannot be read whole (a non-2xx answer, an
    HTML page, a truncated or malformed body). A sync that gets it keeps the last good catalogue."""


class StreamReader(abc.ABC):
    """Per-stream state: sees every upstream SSE event in order and says what the client receives.

    ``on_event`` returns ``event.raw`` to relay the event unchanged, other bytes for a translated event, or
    ``None`` to drop it. It records the last usage seen in ``usage``, sets ``error`` when the provider
    reports an error inside the stream (the gateway then sends its own error event and ends the stream),
    sets ``complete`` once the answer is whole (finish and usage seen; only an end marker may follow) and
    ``finished`` when the provider's end marker arrives. A stream cut after ``complete`` is not an error
    (anthropic/messages-stream-no-trailing-blank-line.sse loses only its ``message_stop``); one that ends
    before is (quirks/truncated-mid-event.sse: cut after the finish reason, inside the usage chunk).
    ``output_chars`` counts the characters of text and tool-call arguments the events carried.
    """

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.error: UpstreamError | None = None
        self.complete = False
        self.finished = False
        # Characters of text and tool-call arguments seen so far (the estimate when usage never comes):
        # counted per event as it goes by, never by rescanning.
        self.output_chars = 0

    @abc.abstractmethod
    def on_event(self, event: SSEEvent) -> bytes | None: ...

    def counted_output(self) -> int:
        """``output_chars`` when the stream is over (a reader may defer counting until it is asked)."""
        return self.output_chars


class StreamDecoder(abc.ABC):
    """Turns a stream that is not SSE (AWS's binary event stream) into chat SSE bytes, read by read, before
    the SSE parser: the plugin's :class:`StreamReader` (and any reader wrapped around it) then sees ordinary
    chat events. ``feed`` must be incremental (a read may end anywhere inside a frame) and bounded: a frame
    past ``max_frame_bytes`` (the tap sets it from ``server.max_sse_event_bytes``), a corrupt frame or the
    provider's own error message sets ``error`` (what came before it is still returned) and ends the
    stream. ``feed`` never raises.
    """

    def __init__(self) -> None:
        self.error: UpstreamError | None = None
        self.max_frame_bytes = 1 << 20

    @abc.abstractmethod
    def feed(self, chunk: bytes) -> bytes: ...

    @abc.abstractmethod
    def close(self) -> bool:
        """The upstream body ended; True when it stopped inside a frame."""


class Provider(abc.ABC):
    """The base of every plugin. Subclasses declare their differences as class attributes and override
    only the verbs whose behaviour differs."""

    plugin_name: ClassVar[str] = ""
    provider_type: ClassVar[ProviderType] = ProviderType.DIRECT
    default_base_url: ClassVar[str] = ""
    auth_header: ClassVar[str] = "Authorization"
    auth_prefix: ClassVar[str] = "Bearer "
    requires_key: ClassVar[bool] = True  # False for servers that take anonymous calls (a local vLLM)
    # What the provider serves natively; a dialect's endpoint it lacks is served through chat if it can.
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    # The content type of a streamed answer; a stream answered with another type is a server fault.
    stream_content_type: ClassVar[str] = "text/event-stream"
    # The plugin's own config settings (``ProviderSettings.options``), and whether a route target may
    # name a ``deployment``; the config refuses any other.
    plugin_settings: ClassVar[frozenset[str]] = frozenset()
    deployments: ClassVar[bool] = False

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.base_url = (settings.base_url or self.default_base_url).rstrip("/")

    @abc.abstractmethod
    def build_request(self, call: Call) -> UpstreamRequest: ...

    @abc.abstractmethod
    def read_reply(self, call: Call, body: bytes) -> Reply | UpstreamError: ...

    @abc.abstractmethod
    def open_stream(self, call: Call) -> StreamReader: ...

    @abc.abstractmethod
    def map_error(self, status: int, content_type: str, body: bytes) -> UpstreamError: ...

    def stream_decoder(self, call: Call) -> StreamDecoder | None:
        """The decoder for a stream that is not SSE (with ``stream_content_type`` its content type); None,
        the default: the stream is SSE."""
        return None

    def map_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """``map_error`` for an answer whose headers are at hand (lower-case names): what dispatch calls.
        A provider whose error class travels in a header (Bedrock's ``x-amzn-errortype``) overrides it."""
        return self.map_error(status, headers.get("content-type", "").lower(), body)

    @abc.abstractmethod
    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        """The provider's whole catalogue, prices in USD per 1M tokens. Raises :class:`CatalogueError`
        (or an aiohttp/timeout error) rather than return a partial list: a missing model means removed."""
        ...

    @abc.abstractmethod
    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool: ...

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        # An empty configured value (``APP-Code: ${AIHUBMIX_APP_CODE:-}``) means "do not send".
        headers = {k: v for k, v in self.settings.headers.items() if v}
        if api_key:
            headers[self.auth_header] = self.auth_prefix + api_key
        return headers
