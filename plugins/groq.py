"""Groq: OpenAI's wire format; the stream's usage also sits in ``x_groq.usage``.

The finish chunk carries the usage twice (``x_groq.usage`` and top-level ``usage``) and a trailing
``choices: []`` chunk repeats it (groq/chat-stream-usage-twice.sse); older answers carried it only in
``x_groq``. Both places are read, the last one seen wins.
"""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class Groq(OpenAICompatible):
    plugin_name = "groq"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.groq.com/openai/v1"
    endpoints = frozenset({Endpoint.CHAT})
    usage_in = "x_groq"


Plugin = Groq
