"""AiHubMix: an OpenAI-compatible aggregator. Its ``APP-Code`` header (a referral code that earns a
discount) and any other extra headers come from the provider's ``headers`` in YAML; an empty value is
not sent.

The catalogue has two halves. ``/api/v1/models`` (beside, not under, ``/v1``) is the public catalogue
with prices in USD per **1K** tokens, ``model_id`` instead of ``id``, and lists as comma-separated strings
(aihubmix/api-v1-models.json). ``/v1/models`` is the new-api list of what the key may call
(aihubmix/v1-models.json). A sync reads both: the ids of the key's list, priced from the catalogue, plus
the catalogue's models the key list does not mention.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from plugins.openai_compatible import OpenAICompatible, fetch_json, number, openai_model_list
from proxy.plugin import CatalogueError, ModelInfo, Provider, ProviderType

_PER_1K_TO_PER_1M = 1000.0


class AiHubMix(OpenAICompatible):
    plugin_name = "aihubmix"
    endpoints = Provider.endpoints  # its chat, completions and embeddings only
    requires_key = True
    provider_type = ProviderType.AGGREGATOR
    default_base_url = "https://aihubmix.com/v1"

    @property
    def catalogue_url(self) -> str:
        """``https://aihubmix.com/v1`` -> ``https://aihubmix.com/api/v1/models`` (any base path)."""
        parts = urlsplit(self.base_url)
        path = parts.path.rstrip("/").removesuffix("/v1")
        return urlunsplit((parts.scheme, parts.netloc, f"{path}/api/v1/models", "", ""))

    async def list_models(self, http: aiohttp.ClientSession) -> list[ModelInfo]:
        headers = self.auth_headers(self.settings.api_key)
        catalogue = parse_catalogue(await fetch_json(http, self.catalogue_url, headers))
        listed = openai_model_list(await fetch_json(http, f"{self.base_url}/models", headers))
        merged = {m.id: m for m in catalogue}
        for model in listed:
            known = merged.get(model.id)
            if known is None:
                merged[model.id] = model
            elif known.owned_by is None and model.owned_by:
                merged[model.id] = dataclasses.replace(known, owned_by=model.owned_by)
        return list(merged.values())


def parse_catalogue(payload: object) -> list[ModelInfo]:
    """``{"data": [{"model_id", "pricing": {input, output, cache_read, cache_write}, "features",
    "context_length", ...}], "success": true}`` -> models priced per 1M tokens."""
    if not isinstance(payload, dict) or payload.get("success") is False:
        raise CatalogueError("the AiHubMix catalogue reports no success")
    items = payload.get("data")
    if not isinstance(items, list):
        raise CatalogueError("the AiHubMix catalogue has no 'data' array")
    out: list[ModelInfo] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str) or not item["model_id"]:
            continue
        pricing = item.get("pricing")
        prices = pricing if isinstance(pricing, dict) else {}
        context = number(item.get("context_length"))
        out.append(
            ModelInfo(
                id=item["model_id"],
                context_length=int(context) if context else None,
                input=_per_million(prices.get("input")),
                output=_per_million(prices.get("output")),
                cached_input=_per_million(prices.get("cache_read")),
                cache_write=_per_million(prices.get("cache_write")),
                features=_words(item.get("features")) + _words(item.get("input_modalities"), "input:"),
            )
        )
    if not out:  # an empty catalogue is an outage, not news: every model would lose its price
        raise CatalogueError("the AiHubMix catalogue lists no models")
    return out


def _per_million(value: object) -> float | None:
    per_1k = number(value)
    # round away float noise (0.00015 * 1000 = 0.15000000000000002)
    return None if per_1k is None else round(per_1k * _PER_1K_TO_PER_1M, 9)


def _words(value: object, prefix: str = "") -> tuple[str, ...]:
    """``"tools,function_calling"`` (or a real list) -> ``("tools", "function_calling")``."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(f"{prefix}{w.strip()}" for w in items if isinstance(w, str) and w.strip())


Plugin = AiHubMix
