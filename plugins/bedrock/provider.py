"""The ``bedrock`` plugin: models on AWS Bedrock through the Converse API, for OpenAI chat clients.

``POST /model/{modelId}/converse`` and ``/converse-stream`` (a binary event stream, framed by
:mod:`plugins.bedrock.eventstream`) on ``https://bedrock-runtime.{region}.amazonaws.com``, signed with
AWS Signature V4 (:mod:`plugins.bedrock.signing`). A Bedrock API key (``api_key``, or a tenant's own key)
is sent as ``Authorization: Bearer`` instead of a signature. The model id may be a foundation model
(``amazon.nova-micro-v1:0``), an inference profile (``us.amazon.nova-micro-v1:0``) or an ARN; it is
URL-encoded into the path.

Translation lives in :mod:`plugins.bedrock.request`, :mod:`plugins.bedrock.reply` and
:mod:`plugins.bedrock.stream`; this module only adds HTTP: URLs, headers, bodies, status codes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp
import orjson

from plugins.bedrock.errors import BedrockFailure, error_of
from plugins.bedrock.reply import to_chat_completion, usage_of
from plugins.bedrock.request import to_converse
from plugins.bedrock.signing import Signer
from plugins.bedrock.stream import BedrockDecoder
from plugins.openai_compatible import OpenAIStreamReader
from proxy.plugin import (
    Call,
    Endpoint,
    Fault,
    ModelInfo,
    Provider,
    ProviderSettings,
    ProviderType,
    Reply,
    StreamDecoder,
    StreamReader,
    UpstreamError,
    UpstreamRequest,
)

EVENT_STREAM = "application/vnd.amazon.eventstream"
_IDS = itertools.count(1)


def _decode(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class Bedrock(Provider):
    plugin_name = "bedrock"
    provider_type = ProviderType.DIRECT
    default_base_url = "https://bedrock-runtime.{region}.amazonaws.com"
    requires_key = False  # signed with AWS credentials; an api_key (a Bedrock API key) is optional
    endpoints = frozenset({Endpoint.CHAT})
    stream_content_type = EVENT_STREAM
    plugin_settings = frozenset({"region", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"})

    def __init__(self, settings: ProviderSettings) -> None:
        region = settings.options.get("region")
        if not region:
            raise ValueError("plugin 'bedrock' needs a region (region: us-east-1)")
        super().__init__(settings)
        self.region = region
        self.base_url = self.base_url.replace("{region}", region)
        self.control_url = (
            f"https://bedrock.{region}.amazonaws.com"
            if settings.base_url in ("", self.default_base_url)
            else self.base_url  # a custom endpoint (a VPC endpoint, a test server) serves both
        )
        self.signer = Signer(region, settings.options)

    def _headers(
        self, method: str, url: str, api_key: str | None, body: bytes, accept: str
    ) -> dict[str, str]:
        headers = {k: v for k, v in self.settings.headers.items() if v}
        headers |= {"Content-Type": "application/json", "Accept": accept}
        if api_key:
            return headers | {"Authorization": f"Bearer {api_key}"}
        return self.signer.sign(method, url, headers, body)

    def build_request(self, call: Call) -> UpstreamRequest:
        """Raises :class:`~plugins.bedrock.errors.RequestRejected` (a 400) for what Converse cannot take."""
        body = orjson.dumps(to_converse(call.body))
        action = "converse-stream" if call.stream else "converse"
        url = f"{self.base_url}/model/{quote(call.model, safe='')}/{action}"
        accept = EVENT_STREAM if call.stream else "application/json"
        return UpstreamRequest(url, self._headers("POST", url, call.api_key, body, accept), body)

    def read_reply(self, call: Call, body: bytes) -> Reply | UpstreamError:
        reply = _decode(body)
        if not isinstance(reply, dict):
            return UpstreamError(502, Fault.SERVER, "Bedrock answered with a body that is not a JSON object")
        completion = to_chat_completion(reply, call.model, _response_id(), int(time.time()))
        usage = reply.get("usage")
        return Reply(orjson.dumps(completion), usage_of(usage) if isinstance(usage, dict) else None)

    def open_stream(self, call: Call) -> StreamReader:
        return OpenAIStreamReader(call.include_usage)  # reads the chat events the decoder makes

    def stream_decoder(self, call: Call) -> StreamDecoder:
        return BedrockDecoder(call.model, _response_id(), int(time.time()))

    def map_error(self, status: int, content_type: str, body: bytes) -> UpstreamError:
        return self._error(status, body, None)

    def map_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        # The error class is in x-amzn-ErrorType ("ThrottlingException:http://internal.amazon.com/...").
        kind = headers.get("x-amzn-errortype", "").partition(":")[0].strip()
        return self._error(status, body, kind or None)

    def _error(self, status: int, body: bytes, kind: str | None) -> UpstreamError:
        payload = _decode(body)
        message = payload.get("message") or payload.get("Message") if isinstance(payload, dict) else None
        if kind is None and isinstance(payload, dict) and isinstance(payload.get("__type"), str):
            kind = str(payload["__type"]).rpartition("#")[2] or None
        if message is None and b"<html" in body[:512].lower():
            message = "an HTML page (an edge or proxy error)"
        return error_of(status, message, kind)

    async def _get_models(self, http: aiohttp.ClientSession, api_key: str | None) -> aiohttp.ClientResponse:
        url = f"{self.control_url}/foundation-models"
        headers = self._headers("GET", url, api_key, b"", "application/json")
        headers.pop("Content-Type", None)
        return await http.get(url, headers=headers)

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        """ListFoundationModels (``GET /foundation-models`` on the control plane, signed): the model ids
        with their provider. Inference profiles (``us.`` ids) are not listed: route to them by name."""
        async with await self._get_models(http, self.settings.api_key) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise BedrockFailure(self.map_error(resp.status, resp.content_type, body))
        page = _decode(body)
        items = page.get("modelSummaries") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise BedrockFailure(
                UpstreamError(502, Fault.SERVER, "Bedrock's model list has no modelSummaries")
            )
        models: list[ModelInfo] = []
        for item in items:
            model_id = item.get("modelId") if isinstance(item, dict) else None
            if isinstance(item, dict) and isinstance(model_id, str) and model_id:
                owner = item.get("providerName")
                models.append(ModelInfo(id=model_id, owned_by=owner if isinstance(owner, str) else None))
        return models

    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool:
        """A Bedrock API key: ListFoundationModels with it as a bearer token. True on 200, False on
        401/403; any other failure raises :class:`BedrockFailure`."""
        async with await self._get_models(http, api_key) as resp:
            body = await resp.read()
            if resp.status == 200:
                return True
            if resp.status in (401, 403):
                return False
            raise BedrockFailure(self.map_error(resp.status, resp.content_type, body))


def _response_id() -> str:
    return f"chatcmpl-bedrock-{time.time_ns():x}-{next(_IDS)}"
