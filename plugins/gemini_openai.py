"""Gemini through Google's OpenAI-compatible endpoint (``/v1beta/openai``): a plain declaration on the
shared base, for clients that want Gemini's own OpenAI dialect rather than the native translation of the
``gemini`` plugin. Usage comes on every chunk, cumulative: the base keeps the last one
(gemini/openai-compat-stream-usage-every-chunk.sse). Google's error bodies there may be a JSON array
holding the envelope; it is unwrapped.
"""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType, UpstreamError


class GeminiOpenAI(OpenAICompatible):
    plugin_name = "gemini_openai"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})

    def map_error(self, status: int, content_type: str, body: bytes) -> UpstreamError:
        stripped = body.strip()
        if stripped.startswith(b"[") and stripped.endswith(b"]"):
            body = stripped[1:-1]  # [{"error": {...}}] -> {"error": {...}}
        return super().map_error(status, content_type, body)


Plugin = GeminiOpenAI
