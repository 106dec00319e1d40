"""Bedrock Converse -> OpenAI chat: the reply side of the translation (pure, no network).

Usage (``usage_of``): ``inputTokens`` excludes the cache reads and writes (bedrock/converse-nonstream-
cache-read.json: 13 input, 1504 cache reads, total 1522 = 13 + 5 + 1504), so the OpenAI prompt count is
the sum of the three. Cache counts also appear as ``cacheReadInputTokenCount``; they are counted once.
"""

from __future__ import annotations

import orjson

from proxy.plugin import JSONObject, Usage

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def _count(usage: JSONObject, key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(usage: JSONObject) -> Usage:
    cached = _count(usage, "cacheReadInputTokens")
    written = _count(usage, "cacheWriteInputTokens")
    return Usage(
        prompt_tokens=_count(usage, "inputTokens") + cached + written,
        completion_tokens=_count(usage, "outputTokens"),
        cached_tokens=cached,
        cache_write_tokens=written,
    )


def openai_usage(usage: Usage) -> JSONObject:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
    }


def finish_reason(reason: object) -> str:
    return STOP_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def to_chat_completion(reply: JSONObject, model: str, request_id: str, created: int) -> JSONObject:
    """A Converse response -> an OpenAI ``chat.completion``. Converse has no id: the request's
    ``x-amzn-RequestId`` is not handed to plugins, so the id is made from the time and the model."""
    output = reply.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSONObject] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        use = block.get("toolUse")
        if isinstance(use, dict):
            arguments = orjson.dumps(use.get("input") or {}).decode()
            function: JSONObject = {"name": use.get("name"), "arguments": arguments}
            calls.append({"id": use.get("toolUseId"), "type": "function", "function": function})
        reasoning = block.get("reasoningContent")
        text = reasoning.get("reasoningText") if isinstance(reasoning, dict) else None
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            thoughts.append(text["text"])
    answer: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        answer["tool_calls"] = calls
    if thoughts:
        answer["reasoning_content"] = "".join(thoughts)
    raw_usage = reply.get("usage")
    usage = usage_of(raw_usage if isinstance(raw_usage, dict) else {})
    choice = {
        "index": 0,
        "message": answer,
        "logprobs": None,
        "finish_reason": finish_reason(reply.get("stopReason")),
    }
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": openai_usage(usage),
    }
