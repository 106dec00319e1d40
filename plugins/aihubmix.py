"""AiHubMix: an OpenAI-compatible aggregator. Its ``APP-Code`` header (a referral code that earns a
discount) and any other extra headers come from the provider's ``headers`` in YAML; an empty value is
not sent."""

from __future__ import annotations

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import ProviderType


class AiHubMix(OpenAICompatible):
    plugin_name = "aihubmix"
    requires_key = True
    provider_type = ProviderType.AGGREGATOR
    default_base_url = "https://aihubmix.com/v1"


Plugin = AiHubMix
