"""The ``anthropic`` plugin: Claude through the Messages API, for OpenAI chat clients.

Also serves AiHubMix's native Claude endpoint (same ``/v1/messages`` and ``x-api-key``): set ``base_url`` to
``https://aihubmix.com``. A ``base_url`` that already ends in ``/v1`` is accepted too.

Translation lives in :mod:`plugins.anthropic.translate` and :mod:`plugins.anthropic.stream`; this module
only adds HTTP: URLs, headers, bodies, status codes.

For Anthropic's own clients (``Endpoint.MESSAGES``, ``Endpoint.COUNT_TOKENS``: the gateway's
``/v1/messages``) nothing is translated: the client's body goes through with the route's model, its
``anthropic-version``/``anthropic-beta`` headers with it, and the answer's bytes come back unchanged; the
usage is read from the message, or from the stream by the same :class:`StreamTranslator` as for chat.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import aiohttp
import orjson

from plugins.anthropic.errors import AnthropicFailure, error_of
from plugins.anthropic.stream import StreamTranslator
from plugins.anthropic.translate import reply_options, to_chat_completion, to_messages, usage_of
from proxy.plugin import (
    Call,
    Endpoint,
    Fault,
    JSONObject,
    ModelInfo,
    Provider,
    ProviderType,
    Reply,
    StreamReader,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from proxy.upstream.sse import SSEEvent

API_VERSION = "2023-06-01"
_NATIVE = frozenset({Endpoint.MESSAGES, Endpoint.COUNT_TOKENS})
_DONE = b"data: [DONE]\n\n"


def _decode(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class AnthropicStream(StreamReader):
    """Turns each Anthropic SSE event into ``data: <chunk>\\n\\n`` lines (several when one event yields
    several chunks), drops ``ping``, and ends with ``data: [DONE]`` at ``message_stop``."""

    def __init__(self, translator: StreamTranslator) -> None:
        super().__init__()
        self.translator = translator

    def on_event(self, event: SSEEvent) -> bytes | None:
        if event.data is None or self.finished or self.error is not None:
            return None
        payload = _decode(event.data)
        if not isinstance(payload, dict):
            self.error = UpstreamError(
                status=502, fault=Fault.SERVER, message="Anthropic sent a stream event that is not JSON"
            )
            return None
        chunks = self.translator.translate(payload)
        self.usage = self.translator.usage
        self.output_chars = self.translator.output_chars
        self.error = self.translator.error
        out = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks)
        if event.event == "message_delta" or payload.get("type") == "message_delta":
            self.complete = True  # stop_reason and final usage are in: only message_stop may follow
        if self.translator.finished:
            self.finished = True
            out += _DONE
        return out or None


class NativeStream(StreamReader):
    """Relays Anthropic's events as they came (``ping`` included) to a Messages client, reading usage,
    errors and the end with the same :class:`StreamTranslator` as the chat translation."""

    def __init__(self, translator: StreamTranslator) -> None:
        super().__init__()
        self.translator = translator

    def on_event(self, event: SSEEvent) -> bytes | None:
        if event.data is None or self.finished or self.error is not None:
            return event.raw if event.data is None and not self.finished else None
        payload = _decode(event.data)
        if not isinstance(payload, dict):
            self.error = UpstreamError(
                status=502, fault=Fault.SERVER, message="Anthropic sent a stream event that is not JSON"
            )
            return None
        self.translator.translate(payload)
        self.usage = self.translator.usage
        self.output_chars = self.translator.output_chars
        self.error = self.translator.error
        if self.error is not None:
            return None  # the gateway ends the stream with its own error event
        if payload.get("type") == "message_delta":
            self.complete = True  # stop_reason and final usage are in: only message_stop may follow
        self.finished = self.translator.finished
        return event.raw


class Anthropic(Provider):
    plugin_name = "anthropic"
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.anthropic.com"
    auth_header = "x-api-key"
    auth_prefix = ""
    endpoints = frozenset({Endpoint.CHAT, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS})

    def _url(self, path: str) -> str:
        base = self.base_url.removesuffix("/v1")  # a base_url copied from an SDK example ends in /v1
        return f"{base}/v1/{path}"

    def _headers(self, api_key: str | None, client: Mapping[str, str] | None = None) -> dict[str, str]:
        # The client's anthropic-version/anthropic-beta (a Messages client's own) override the defaults,
        # and configured headers (e.g. anthropic-beta, or another anthropic-version) override both.
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        if client:
            headers.update(client)
        headers.update(self.auth_headers(api_key or self.settings.api_key))
        return headers

    def build_request(self, call: Call) -> UpstreamRequest:
        """Raises :class:`~plugins.anthropic.errors.RequestRejected` (its ``error`` is a 400 client
        fault) when the body uses an OpenAI feature Anthropic lacks."""
        if call.endpoint in _NATIVE:  # an Anthropic client's own body: only the model is the route's
            native = {**call.body, "model": call.model}
            headers = self._headers(call.api_key, call.headers)
            return UpstreamRequest(self._url(str(call.endpoint)), headers, orjson.dumps(native))
        body = to_messages(call.body, call.model, call.stream)
        return UpstreamRequest(self._url("messages"), self._headers(call.api_key), orjson.dumps(body))

    def read_reply(self, call: Call, body: bytes) -> Reply | UpstreamError:
        message = _decode(body)
        if not isinstance(message, dict) or message.get("type") == "error":
            return self.map_error(502, "application/json", body)
        if call.endpoint is Endpoint.COUNT_TOKENS:
            return Reply(body, Usage())  # a count is free (anthropic/count-tokens.json: only input_tokens)
        if call.endpoint is Endpoint.MESSAGES:
            usage = message.get("usage")
            return Reply(body, usage_of(usage) if isinstance(usage, dict) else None)
        completion = to_chat_completion(message, reply_options(call.body), int(time.time()))
        usage = message.get("usage")
        return Reply(orjson.dumps(completion), usage_of(usage) if isinstance(usage, dict) else None)

    def open_stream(self, call: Call) -> StreamReader:
        translator = StreamTranslator(reply_options(call.body), call.include_usage, int(time.time()))
        if call.endpoint is Endpoint.MESSAGES:
            return NativeStream(translator)
        return AnthropicStream(translator)

    def map_error(self, status: int, content_type: str, body: bytes) -> UpstreamError:
        payload = _decode(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            return error_of(error, status)
        # Not Anthropic's envelope: typically an HTML page from a proxy or CDN edge in front of the API.
        fault = Fault.CLIENT if 400 <= status < 500 and status != 429 else Fault.SERVER
        what = "an HTML page" if b"<html" in body[:512].lower() else f"a non-JSON body ({content_type})"
        return UpstreamError(
            status=status, fault=fault, message=f"Anthropic answered HTTP {status} with {what}"
        )

    async def _get_models(
        self, http: aiohttp.ClientSession, api_key: str | None, after: str | None
    ) -> JSONObject:
        params = {"limit": "1000"} if after is None else {"limit": "1000", "after_id": after}
        async with http.get(self._url("models"), headers=self._headers(api_key), params=params) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise AnthropicFailure(self.map_error(resp.status, resp.content_type, body))
        page = _decode(body)
        if not isinstance(page, dict):
            raise AnthropicFailure(self.map_error(502, resp.content_type, body))
        return page

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        """``GET /v1/models``, following ``has_more``/``last_id`` pages. Anthropic's catalogue has no prices;
        the price table supplies them."""
        models: list[ModelInfo] = []
        after: str | None = None
        while True:
            page = await self._get_models(http, None, after)
            data = page.get("data")
            for item in data if isinstance(data, list) else []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    limit = item.get("max_input_tokens")  # newer API versions describe the window
                    context = limit if isinstance(limit, int) else None
                    models.append(ModelInfo(id=str(item["id"]), context_length=context, owned_by="anthropic"))
            last = page.get("last_id")
            if page.get("has_more") is not True or not isinstance(last, str) or last == after:
                return models
            after = last

    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool:
        """True when Anthropic accepts ``api_key``, False on 401/403; any other failure raises
        :class:`AnthropicFailure` (the key's validity is unknown then)."""
        headers = self._headers(None) | {self.auth_header: api_key}
        async with http.get(self._url("models"), headers=headers, params={"limit": "1"}) as resp:
            body = await resp.read()
            if resp.status == 200:
                return True
            if resp.status in (401, 403):
                return False
            raise AnthropicFailure(self.map_error(resp.status, resp.content_type, body))
