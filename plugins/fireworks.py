"""Fireworks AI: OpenAI's wire format under ``/inference/v1``; models are named
``accounts/fireworks/models/<name>``."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class Fireworks(OpenAICompatible):
    plugin_name = "fireworks"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.fireworks.ai/inference/v1"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


Plugin = Fireworks
