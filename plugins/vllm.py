"""vLLM's OpenAI-compatible server: no key unless started with ``--api-key``; its errors come as
``{"object": "error", "message": ..., "code": 400}`` (read by the shared envelope reader) and its model
list gives ``max_model_len`` as the context length."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class VLLM(OpenAICompatible):
    plugin_name = "vllm"
    requires_key = False
    provider_type = ProviderType.DIRECT
    default_base_url = "http://127.0.0.1:8000/v1"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


Plugin = VLLM
