"""Anthropic Messages -> OpenAI chat: the reply side of the translation (pure, no network).

What the client asked for that shapes the answer (``reply_options``), a whole message as a
``chat.completion`` (``to_chat_completion``), the finish reason, and usage (``usage_of``/``openai_usage``):
see their docstrings. The streaming form is in :mod:`plugins.anthropic.stream`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from proxy.plugin import JSONObject, Usage

JSON_TOOL = "json_response"  # the forced tool that stands in for a JSON mode (see plugins.anthropic.request)
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


@dataclass(frozen=True, slots=True)
class ReplyOptions:
    """What the client asked for that shapes the answer: reasoning text, and JSON via the forced tool."""

    reasoning: bool = False
    json_tool: bool = False


def reply_options(body: JSONObject) -> ReplyOptions:
    effort = body.get("reasoning_effort")
    thinking = body.get("thinking")
    reasoning = (isinstance(effort, str) and effort != "none") or (
        isinstance(thinking, dict) and thinking.get("type") != "disabled"
    )
    fmt = body.get("response_format")
    json_tool = isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")
    return ReplyOptions(reasoning=reasoning, json_tool=json_tool)


def to_chat_completion(message: JSONObject, options: ReplyOptions, created: int) -> JSONObject:
    """An Anthropic message -> an OpenAI ``chat.completion``.

    Text blocks join into ``content``; ``tool_use`` blocks become ``tool_calls`` (arguments a JSON string);
    ``thinking`` text goes to ``reasoning_content`` only when the client asked for reasoning; the forced
    ``json_response`` tool's input becomes the content. Other block types (redacted thinking, server tools)
    have no OpenAI form and are left out.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSONObject] = []
    blocks = message.get("content")
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(str(block["text"]))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(str(block["thinking"]))
        elif kind == "tool_use" and options.json_tool and block.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            function: JSONObject = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    reply: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if options.reasoning and thoughts:
        reply["reasoning_content"] = "".join(thoughts)
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason(message, options),
    }
    raw_usage = message.get("usage")
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model"),
        "choices": [choice],
        "usage": openai_usage(raw_usage if isinstance(raw_usage, dict) else {}),
    }


def finish_reason(message: JSONObject, options: ReplyOptions) -> str:
    reason = message.get("stop_reason")
    if reason == "tool_use" and options.json_tool:
        return "stop"  # the forced JSON tool is the answer, not a call for the client to make
    return FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def _count(usage: JSONObject, key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def usage_of(usage: JSONObject) -> Usage:
    """Anthropic usage -> the gateway's :class:`Usage`. ``input_tokens`` excludes cache reads and writes
    (``anthropic/messages-stream-cache-write.sse``), so the OpenAI prompt count is the sum of the three."""
    cached = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    return Usage(
        prompt_tokens=_count(usage, "input_tokens") + cached + written,
        completion_tokens=_count(usage, "output_tokens"),
        cached_tokens=cached,
        cache_write_tokens=written,
    )


def openai_usage(usage: JSONObject) -> JSONObject:
    counts = usage_of(usage)
    details = {"cached_tokens": counts.cached_tokens, "cache_write_tokens": counts.cache_write_tokens}
    return {
        "prompt_tokens": counts.prompt_tokens,
        "completion_tokens": counts.completion_tokens,
        "total_tokens": counts.prompt_tokens + counts.completion_tokens,
        "prompt_tokens_details": details,
    }
