"""DeepSeek: OpenAI's wire format with reasoning beside the answer.

- ``deepseek-reasoner`` streams ``delta.reasoning_content`` before ``delta.content``; it is relayed as
  sent (an OpenAI client ignores the field) and counted as output when no usage comes
  (deepseek/chat-stream-reasoning-content.sse).
- The usage adds ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens``; cache hits are read as cached
  tokens (the shared usage reader knows the name). With ``include_usage`` the usage rides on the finish
  chunk, with no ``choices: []`` chunk after it (deepseek/chat-stream-usage-on-finish-chunk.sse).
"""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, ProviderType


class DeepSeek(OpenAICompatible):
    plugin_name = "deepseek"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.deepseek.com/v1"
    endpoints = frozenset({Endpoint.CHAT})  # its completions are FIM on a beta path


Plugin = DeepSeek
