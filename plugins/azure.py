"""Azure OpenAI: OpenAI's wire format behind Azure's URLs and auth, declared on the shared base.

- **Where calls go.** With a dated ``api_version`` (``2024-10-21``): the deployment path
  ``{base}/openai/deployments/{deployment}/{endpoint}?api-version=...``, the deployment being the route
  target's ``deployment`` or else its model name. Without one, or with ``api_version: v1``: the v1 API,
  ``{base}/openai/v1/{endpoint}``, whose body names the deployment as ``model`` (``preview``/``latest`` add
  ``?api-version=`` there). ``base_url`` is the resource, ``https://<resource>.openai.azure.com`` (a copied
  ``/openai`` or ``/openai/v1`` suffix is accepted).
- **Auth.** ``api_key`` goes in the ``api-key`` header; ``entra_token`` (a Microsoft Entra ID access token,
  as a ``${VAR}``) goes as ``Authorization: Bearer``. A tenant's own key (BYOK) is an ``api-key``.
- **Content filters.** A prompt the filter blocks is HTTP 400 ``code: content_filter``
  (azure/error-400-content-filter.json): the caller's fault, answered at once, never a fallback. An answer
  cut by the filter (``finish_reason: content_filter``) is a normal answer, relayed as it came, and so are
  the ``prompt_filter_results`` / ``content_filter_results`` annotations (azure/chat-stream-content-filter-
  prompt-results.sse opens with a chunk that has only them, ``choices: []`` and empty ids).
"""

from __future__ import annotations

import dataclasses
import re

import aiohttp

from plugins.openai_compatible import OpenAICompatible, fetch_json, openai_model_list
from proxy.plugin import (
    Call,
    Endpoint,
    ModelInfo,
    ProviderSettings,
    ProviderType,
    UpstreamError,
    UpstreamRequest,
)

_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class Azure(OpenAICompatible):
    plugin_name = "azure"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = ""  # the resource's own URL: required
    auth_header = "api-key"
    auth_prefix = ""
    # The v1 path also serves the Responses API (/openai/v1/responses); it joins this set once the gateway
    # routes that endpoint.
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})
    plugin_settings = frozenset({"api_version", "entra_token"})
    deployments = True

    def __init__(self, settings: ProviderSettings) -> None:
        version = settings.options.get("api_version", "v1")
        if version not in ("v1", "preview", "latest") and not _DATED.match(version):
            wanted = "v1, preview, latest or a date (2024-10-21)"
            raise ValueError(f"api_version must be {wanted}, not {version!r}")
        self.entra_token = settings.options.get("entra_token") or None
        if self.entra_token and not settings.api_key:
            # The token stands where a key would: the provider counts as keyed, and errors that quote it
            # have it masked like a key.
            settings = dataclasses.replace(settings, api_key=self.entra_token)
        super().__init__(settings)
        self.api_version = version
        root = self.base_url
        for suffix in ("/openai/v1", "/openai"):
            root = root.removesuffix(suffix)
        self.root = root

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {k: v for k, v in self.settings.headers.items() if v}
        if api_key and self.entra_token and api_key == self.entra_token:
            headers["Authorization"] = "Bearer " + api_key
        elif api_key:
            headers["api-key"] = api_key
        return headers

    def _url(self, path: str, deployment: str) -> str:
        if _DATED.match(self.api_version):
            return f"{self.root}/openai/deployments/{deployment}/{path}?api-version={self.api_version}"
        query = "" if self.api_version == "v1" else f"?api-version={self.api_version}"
        return f"{self.root}/openai/v1/{path}{query}"

    def build_request(self, call: Call) -> UpstreamRequest:
        deployment = call.deployment or call.model
        if call.deployment:  # the v1 API names the deployment in the body
            call = dataclasses.replace(call, model=call.deployment)
        request = super().build_request(call)
        return dataclasses.replace(request, url=self._url(str(call.endpoint), deployment))

    def refine(self, error: UpstreamError, body: object) -> UpstreamError:
        if error.code == "content_filter":
            return dataclasses.replace(error, type="invalid_request_error")
        return error

    def _models_url(self) -> str:
        if _DATED.match(self.api_version):
            return f"{self.root}/openai/models?api-version={self.api_version}"
        return self._url("models", "")

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        """The resource's models (``GET /openai/v1/models``): the base models it can deploy. Deployments
        themselves are listed by Azure's management API, which this plugin does not call: route to them
        by name."""
        payload = await fetch_json(http, self._models_url(), self.auth_headers(self.settings.api_key))
        return openai_model_list(payload)

    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool:
        async with http.get(self._models_url(), headers=self.auth_headers(api_key)) as resp:
            if resp.status in (401, 403):
                return False
            resp.raise_for_status()
            return True


Plugin = Azure
