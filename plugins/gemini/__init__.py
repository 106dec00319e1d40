"""Google Gemini as a direct provider: OpenAI chat in, the native ``generateContent`` API upstream."""

from plugins.gemini.provider import Gemini as Plugin

__all__ = ["Plugin"]
