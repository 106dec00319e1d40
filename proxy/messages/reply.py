"""OpenAI chat answer -> Anthropic message: the reply side of the translation. Pure: no network.

A ``chat.completion`` becomes a ``message`` (``to_message``): ``reasoning_content`` (or ``reasoning``) first
as a ``thinking`` block, the text as a ``text`` block, each tool call as a ``tool_use`` block (its arguments
parsed back into ``input``); the finish reason becomes ``stop_reason`` (``STOP_REASONS``) and the usage
Anthropic's (``anthropic_usage``: ``input_tokens`` excludes cache reads and writes, as Anthropic counts).
The streaming form is in :mod:`proxy.messages.stream`.
"""

from __future__ import annotations

import secrets

import orjson

from proxy.plugin import JSONObject, Usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: object, called: bool = False) -> str:
    """Anthropic's ``stop_reason`` for a chat ``finish_reason``. A turn that called tools ends with
    ``tool_use`` even when the provider said ``stop`` (OpenAI does when the call was forced by name,
    openai/chat-stream-tool-calls.sse): that is what tells an Anthropic client to run them."""
    reason = STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    return "tool_use" if called and reason == "end_turn" else reason


def message_id(chat_id: object) -> str:
    """Anthropic ids start with ``msg_``; the chat answer's id is kept after it when there is one."""
    if isinstance(chat_id, str) and chat_id:
        return chat_id if chat_id.startswith("msg_") else f"msg_{chat_id}"
    return f"msg_{secrets.token_hex(12)}"


def anthropic_usage(usage: Usage | None) -> JSONObject:
    """The gateway's usage (OpenAI's meaning: the prompt includes cache reads and writes) as Anthropic's."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    out: JSONObject = {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens),
        "output_tokens": usage.completion_tokens,
    }
    out["cache_creation_input_tokens"] = usage.cache_write_tokens
    out["cache_read_input_tokens"] = usage.cached_tokens
    return out


def tool_input(arguments: object) -> JSONObject:
    """A tool call's arguments (a JSON string) as Anthropic's ``input`` object; ``{}`` when they are
    empty, and the raw text under ``"arguments"`` when they are not a JSON object (a model's slip)."""
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"arguments": arguments}


def reasoning_text(message: JSONObject) -> str | None:
    """The reasoning a chat message or delta carries: ``reasoning_content`` (DeepSeek, vLLM) or
    ``reasoning`` (OpenRouter)."""
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def to_message(completion: object, model: str, usage: Usage | None) -> JSONObject:
    """A ``chat.completion`` as an Anthropic ``message`` (first choice only; Messages has no ``n``).
    ``model`` is the client's model name; ``usage`` is what the gateway read from the answer."""
    completion = completion if isinstance(completion, dict) else {}
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[JSONObject] = []
    thinking = reasoning_text(message)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # some providers answer with content parts
        text = "".join(str(p["text"]) for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:  # the model declined: its words are the answer's text
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{secrets.token_hex(12)}",
                "name": function.get("name"),
                "input": tool_input(function.get("arguments")),
            }
        )
    called = any(block["type"] == "tool_use" for block in content)
    refused = isinstance(refusal, str) and bool(refusal)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "refusal" if refused else stop_reason(choice.get("finish_reason"), called),
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }
