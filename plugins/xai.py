"""xAI (Grok): OpenAI's wire format. Reasoning models answer with ``reasoning_content`` (relayed) and
count ``completion_tokens_details.reasoning_tokens``; they refuse ``presence_penalty``,
``frequency_penalty`` and ``stop`` with a 400, which reaches the client as its own fault."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class XAI(OpenAICompatible):
    plugin_name = "xai"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.x.ai/v1"
    endpoints = frozenset({Endpoint.CHAT})


Plugin = XAI
