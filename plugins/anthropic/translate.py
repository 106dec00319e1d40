"""OpenAI chat <-> Anthropic Messages: pure translation, no network.

Requests are translated in :mod:`plugins.anthropic.request` (``to_messages``), replies and usage in
:mod:`plugins.anthropic.reply` (``to_chat_completion``, ``usage_of``, ``openai_usage``); this module
gathers both under one name.
"""

from plugins.anthropic.reply import (
    FINISH_REASONS,
    JSON_TOOL,
    ReplyOptions,
    finish_reason,
    openai_usage,
    reply_options,
    to_chat_completion,
    usage_of,
)
from plugins.anthropic.request import DEFAULT_MAX_TOKENS, to_messages

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "FINISH_REASONS",
    "JSON_TOOL",
    "ReplyOptions",
    "finish_reason",
    "openai_usage",
    "reply_options",
    "to_chat_completion",
    "to_messages",
    "usage_of",
]
