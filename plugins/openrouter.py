"""OpenRouter: an OpenAI-compatible aggregator with a few quirks of its own.

- Streams carry ``: OPENROUTER PROCESSING`` comments while a model warms up; they are relayed as keep-alives
  (openrouter/chat-stream-multiple-processing-comments.sse).
- ``usage.cost`` is OpenRouter's own charge in USD; it is recorded beside ours.
- Errors carry a numeric ``code`` and, for an upstream provider's failure, ``metadata.raw`` with that
  provider's message (openrouter/error-400-provider-returned-error.json); the raw message is more useful
  than "Provider returned error", so it is surfaced.
- Errors may arrive after HTTP 200 as a chunk with ``error`` (openrouter/chat-stream-midstream-error.sse),
  handled by the shared stream reader.
"""

from __future__ import annotations

import dataclasses

import orjson

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import ProviderType, UpstreamError


class OpenRouter(OpenAICompatible):
    plugin_name = "openrouter"
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


Plugin = OpenRouter
