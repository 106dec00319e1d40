"""Ollama's OpenAI-compatible API on the local machine: no key (set ``api_key`` when a proxy in front
asks for one); no price source knows its models, so price them in YAML or allow unpriced models."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class Ollama(OpenAICompatible):
    plugin_name = "ollama"
    requires_key = False
    provider_type = ProviderType.DIRECT
    default_base_url = "http://127.0.0.1:11434/v1"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


Plugin = Ollama
