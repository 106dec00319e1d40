"""Together AI: OpenAI's wire format for chat, completions and embeddings of open models."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class Together(OpenAICompatible):
    plugin_name = "together"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.together.xyz/v1"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


Plugin = Together
