"""OpenAI itself: the reference wire format, so nothing to declare beyond where it lives."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import OPENAI_FAMILY, Provider, ProviderType


class OpenAI(OpenAICompatible):
    plugin_name = "openai"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.openai.com/v1"
    endpoints = Provider.endpoints | OPENAI_FAMILY  # no /v1/rerank: OpenAI has none


Plugin = OpenAI
