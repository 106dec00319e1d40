"""The ``gemini`` plugin: Google's Gemini API (``generativelanguage.googleapis.com``), native
``generateContent`` / ``streamGenerateContent?alt=sse``, for OpenAI chat clients. The key goes in the
``x-goog-api-key`` header (never in the URL, where logs would keep it).

Translation lives in :mod:`plugins.gemini.request`, :mod:`plugins.gemini.reply` and
:mod:`plugins.gemini.stream`; this module only adds HTTP: URLs, headers, bodies, status codes.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import aiohttp
import orjson

from plugins.gemini.errors import GeminiFailure, error_of, is_bad_key
from plugins.gemini.reply import to_chat_completion, usage_of
from plugins.gemini.request import to_gemini
from plugins.gemini.stream import GeminiStream
from proxy.plugin import (
    Call,
    Endpoint,
    Fault,
    ModelInfo,
    Provider,
    ProviderType,
    Reply,
    StreamReader,
    UpstreamError,
    UpstreamRequest,
)

_MAX_PAGES = 20


def _decode(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class Gemini(Provider):
    plugin_name = "gemini"
    provider_type = ProviderType.DIRECT
    default_base_url = "https://generativelanguage.googleapis.com"
    auth_header = "x-goog-api-key"
    auth_prefix = ""
    endpoints = frozenset({Endpoint.CHAT})

    def _url(self, path: str) -> str:
        base = self.base_url.removesuffix("/v1beta")  # a base_url copied with its version is accepted
        return f"{base}/v1beta/{path}"

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        headers.update(self.auth_headers(api_key or self.settings.api_key))
        return headers

    def build_request(self, call: Call) -> UpstreamRequest:
        """Raises :class:`~plugins.gemini.errors.RequestRejected` (a 400) for what Gemini cannot take."""
        body = to_gemini(call.body)
        model = quote(call.model.removeprefix("models/"), safe="-._~")
        action = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        return UpstreamRequest(
            self._url(f"models/{model}:{action}"), self._headers(call.api_key), orjson.dumps(body)
        )

    def read_reply(self, call: Call, body: bytes) -> Reply | UpstreamError:
        reply = _decode(body)
        if not isinstance(reply, dict):
            return UpstreamError(502, Fault.SERVER, "Gemini answered with a body that is not a JSON object")
        if isinstance(reply.get("error"), dict):
            return self.map_error(502, "application/json", body)
        completion = to_chat_completion(reply, int(time.time()))
        usage = reply.get("usageMetadata")
        return Reply(orjson.dumps(completion), usage_of(usage) if isinstance(usage, dict) else None)

    def open_stream(self, call: Call) -> StreamReader:
        n = call.body.get("n")
        choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
        return GeminiStream(call.include_usage, int(time.time()), call.model, choices)

    def map_error(self, status: int, content_type: str, body: bytes) -> UpstreamError:
        payload = _decode(body)
        if isinstance(payload, list) and payload:  # some Google front ends wrap the Status in an array
            payload = payload[0]
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            return error_of(error, status)
        fault = Fault.CLIENT if 400 <= status < 500 and status != 429 else Fault.SERVER
        what = "an HTML page" if b"<html" in body[:512].lower() else f"a non-JSON body ({content_type})"
        return UpstreamError(status=status, fault=fault, message=f"Gemini answered HTTP {status} with {what}")

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        """``GET /v1beta/models``, following ``nextPageToken``. Ids lose their ``models/`` prefix; the
        context window is ``inputTokenLimit``; features are the supported generation methods. No prices:
        the price table supplies them."""
        models: list[ModelInfo] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"pageSize": "1000"} | ({"pageToken": token} if token else {})
            async with http.get(self._url("models"), headers=self._headers(None), params=params) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise GeminiFailure(self.map_error(resp.status, resp.content_type, body))
            page = _decode(body)
            items = page.get("models") if isinstance(page, dict) else None
            if not isinstance(page, dict) or not isinstance(items, list):
                raise GeminiFailure(UpstreamError(502, Fault.SERVER, "Gemini's model list has no 'models'"))
            for item in items:
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(item, dict) or not isinstance(name, str) or not name:
                    continue
                limit = item.get("inputTokenLimit")
                methods = item.get("supportedGenerationMethods")
                models.append(
                    ModelInfo(
                        id=name.removeprefix("models/"),
                        context_length=limit if isinstance(limit, int) else None,
                        features=tuple(m for m in methods if isinstance(m, str))
                        if isinstance(methods, list)
                        else (),
                        owned_by="google",
                    )
                )
            nxt = page.get("nextPageToken")
            if not isinstance(nxt, str) or not nxt or nxt == token:
                return models
            token = nxt
        return models

    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool:
        """``GET /v1beta/models?pageSize=1`` with the key: True on 200; False when Gemini rejects the key
        (its 400 ``API_KEY_INVALID``, or 401/403); any other failure raises :class:`GeminiFailure`."""
        headers = self._headers(None) | {self.auth_header: api_key}
        async with http.get(self._url("models"), headers=headers, params={"pageSize": "1"}) as resp:
            body = await resp.read()
            if resp.status == 200:
                return True
            if resp.status in (401, 403):
                return False
            payload = _decode(body)
            error = payload.get("error") if isinstance(payload, dict) else None
            if resp.status == 400 and isinstance(error, dict) and is_bad_key(error):
                return False
            raise GeminiFailure(self.map_error(resp.status, resp.content_type, body))
