"""Mistral: OpenAI's wire format with a stricter schema.

- Unknown fields are refused with 422 ``extra_forbidden``: ``stream_options`` is never sent (a stream's
  last chunk carries the usage anyway), and ``max_completion_tokens`` / ``seed`` go as Mistral's
  ``max_tokens`` / ``random_seed``.
- Errors come as ``{"object": "error", "message": ..., "type": ...}``, the message sometimes pydantic's
  ``detail`` list: the shared envelope reader takes that shape too.
"""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class Mistral(OpenAICompatible):
    plugin_name = "mistral"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.mistral.ai/v1"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})  # its completions are FIM, another path
    stream_options = False
    renamed = {"max_completion_tokens": "max_tokens", "seed": "random_seed"}


Plugin = Mistral
