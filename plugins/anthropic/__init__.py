"""Anthropic (Claude) as a direct provider: OpenAI chat in, Messages API upstream."""

from plugins.anthropic.provider import Anthropic as Plugin

__all__ = ["Plugin"]
