"""OpenRouter: an OpenAI-compatible aggregator with a few quirks of its own.

- Streams carry ``: OPENROUTER PROCESSING`` comments while a model warms up; they are relayed as keep-alives
  (openrouter/chat-stream-multiple-processing-comments.sse).
- ``usage.cost`` is OpenRouter's own charge in USD; it is recorded beside ours.
- Errors carry a numeric ``code`` and, for an upstream provider's failure, ``metadata.raw`` with that
  provider's message (openrouter/error-400-provider-returned-error.json); the raw message is more useful
  than "Provider returned error", so it is surfaced.
- Errors may arrive after HTTP 200 as a chunk with ``error`` (openrouter/chat-stream-midstream-error.sse),
  handled by the shared stream reader.
- A key is checked with ``GET /api/v1/key``: the catalogue is public and accepts any key.
- The catalogue (``/api/v1/models``, openrouter/models.json) prices in USD per **token**, as strings
  (``"0.00003"``), with ``context_length``, ``architecture.input_modalities`` and
  ``supported_parameters``; it may be paginated (``links.next``).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urljoin

import aiohttp
import orjson

from plugins.openai_compatible import OpenAICompatible, fetch_json, number
from proxy.plugin import CatalogueError, ModelInfo, Provider, ProviderType, UpstreamError

_PER_TOKEN_TO_PER_1M = 1_000_000.0
_MAX_PAGES = 20


class OpenRouter(OpenAICompatible):
    plugin_name = "openrouter"
    endpoints = Provider.endpoints  # its chat, completions and embeddings only
    requires_key = True
    provider_type = ProviderType.AGGREGATOR
    default_base_url = "https://openrouter.ai/api/v1"

    def refine(self, error: UpstreamError, body: object) -> UpstreamError:
        err = body.get("error") if isinstance(body, dict) else None
        metadata = err.get("metadata") if isinstance(err, dict) else None
        raw = metadata.get("raw") if isinstance(metadata, dict) else None
        provider = metadata.get("provider_name") if isinstance(metadata, dict) else None
        if not isinstance(raw, str) or not raw:
            return error
        detail = raw
        try:
            inner = orjson.loads(raw)
        except orjson.JSONDecodeError:
            inner = None
        if isinstance(inner, dict) and isinstance(inner.get("error"), dict):
            message = inner["error"].get("message")
            detail = message if isinstance(message, str) else raw
        via = f" (via {provider})" if isinstance(provider, str) else ""
        return dataclasses.replace(error, message=f"{error.message}{via}: {detail.strip()}")

    async def validate_key(self, http: aiohttp.ClientSession, api_key: str) -> bool:
        """``GET /key`` (the key's own limits and usage): ``GET /models`` is public and answers any key."""
        async with http.get(f"{self.base_url}/key", headers=self.auth_headers(api_key)) as resp:
            if resp.status in (401, 403):
                return False
            resp.raise_for_status()
            return True

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        headers = self.auth_headers(self.settings.api_key)
        url: str | None = f"{self.base_url}/models"
        models: dict[str, ModelInfo] = {}
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            payload = await fetch_json(http, url, headers)
            page = parse_catalogue(payload)
            fresh = [m for m in page if m.id not in models]
            models.update((m.id, m) for m in fresh)
            # Follow ``links.next`` only while pages bring new models: a server that ignores ``offset``
            # answers the same page again, which must not loop.
            url = _next_page(url, payload) if fresh else None
        return list(models.values())


def parse_catalogue(payload: object) -> list[ModelInfo]:
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise CatalogueError("the OpenRouter catalogue has no 'data' array")
    out: list[ModelInfo] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        pricing = item.get("pricing")
        prices = pricing if isinstance(pricing, dict) else {}
        top = item.get("top_provider")
        context = number(item.get("context_length")) or (
            number(top.get("context_length")) if isinstance(top, dict) else None
        )
        arch = item.get("architecture")
        modalities = arch.get("input_modalities") if isinstance(arch, dict) else None
        params = item.get("supported_parameters")
        features = tuple(p for p in params if isinstance(p, str)) if isinstance(params, list) else ()
        if isinstance(modalities, list):
            features += tuple(f"input:{m}" for m in modalities if isinstance(m, str))
        out.append(
            ModelInfo(
                id=item["id"],
                context_length=int(context) if context else None,
                input=_per_million(prices.get("prompt")),
                output=_per_million(prices.get("completion")),
                cached_input=_per_million(prices.get("input_cache_read")),
                cache_write=_per_million(prices.get("input_cache_write")),
                features=features,
                owned_by=item["id"].split("/", 1)[0] if "/" in item["id"] else None,
            )
        )
    return out


def _per_million(value: object) -> float | None:
    per_token = number(value)
    # "0.00003" * 1e6 = 30.000000000000004 in floats: round the noise away
    return None if per_token is None else round(per_token * _PER_TOKEN_TO_PER_1M, 9)


def _next_page(url: str, payload: object) -> str | None:
    links = payload.get("links") if isinstance(payload, dict) else None
    nxt = links.get("next") if isinstance(links, dict) else None
    return urljoin(url, nxt) if isinstance(nxt, str) and nxt else None


Plugin = OpenRouter
