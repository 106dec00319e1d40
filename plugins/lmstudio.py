"""LM Studio's local server (OpenAI-compatible): no key."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class LMStudio(OpenAICompatible):
    plugin_name = "lmstudio"
    requires_key = False
    provider_type = ProviderType.DIRECT
    default_base_url = "http://127.0.0.1:1234/v1"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


Plugin = LMStudio
