"""OpenAI itself: the reference wire format, so nothing to declare beyond where it lives (and that it
serves the Responses API natively)."""

from __future__ import annotations

from plugins.openai_responses import OpenAIResponses
from proxy.plugin import ProviderType


class OpenAI(OpenAIResponses):
    plugin_name = "openai"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.openai.com/v1"


Plugin = OpenAI
