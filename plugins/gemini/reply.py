"""Gemini ``generateContent`` -> OpenAI chat: the reply side of the translation (pure, no network).

Usage (``usage_of``): ``promptTokenCount`` includes ``cachedContentTokenCount`` (OpenAI's meaning of
cached tokens, gemini/generate-content-cached-content.json), but not ``toolUsePromptTokenCount`` (the
prompt of a built-in tool such as URL context), which is billed as input too; ``thoughtsTokenCount`` is
not inside ``candidatesTokenCount`` (gemini/generate-content-thoughts-tool-use-tokens.json: total 2515 =
32 + 41 + 2395 + 47). So ``prompt_tokens`` = prompt + tool-use prompt, ``completion_tokens`` = candidates
+ thoughts (billed as output, as OpenAI counts reasoning), ``reasoning_tokens`` = thoughts.
"""

from __future__ import annotations

import orjson

from proxy.plugin import JSONObject, Usage

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
}


def _count(usage: JSONObject, key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(usage: JSONObject) -> Usage:
    thoughts = _count(usage, "thoughtsTokenCount")
    return Usage(
        prompt_tokens=_count(usage, "promptTokenCount") + _count(usage, "toolUsePromptTokenCount"),
        completion_tokens=_count(usage, "candidatesTokenCount") + thoughts,
        cached_tokens=_count(usage, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def openai_usage(usage: Usage) -> JSONObject:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def tool_call(part: JSONObject, index: int, response_id: object) -> JSONObject | None:
    """A ``functionCall`` part -> an OpenAI tool call (arguments a JSON string), or None. Gemini's calls
    have no id unless the API gives one; one is made from the response id and the call's index."""
    call = part.get("functionCall")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    given = call.get("id")
    call_id = given if isinstance(given, str) and given else f"call_{response_id or 'gemini'}_{index}"
    out: JSONObject = {
        "id": call_id,
        "type": "function",
        "function": {"name": call["name"], "arguments": orjson.dumps(call.get("args") or {}).decode()},
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def finish_reason(reason: object, has_calls: bool) -> str:
    # Gemini ends a function call with STOP (gemini/stream-generate-content-function-call.sse).
    if has_calls and reason in ("STOP", None):
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def to_chat_completion(reply: JSONObject, created: int) -> JSONObject:
    """A ``GenerateContentResponse`` -> an OpenAI ``chat.completion``. Thought summaries (``thought:
    true`` parts) are left out. A prompt blocked by the safety filters (``promptFeedback.blockReason``, no
    candidates) is an answer with ``finish_reason: content_filter`` and no content."""
    response_id = reply.get("responseId")
    choices: list[JSONObject] = []
    candidates = reply.get("candidates")
    for n, candidate in enumerate(candidates if isinstance(candidates, list) else []):
        if not isinstance(candidate, dict):
            continue
        texts: list[str] = []
        calls: list[JSONObject] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            call = tool_call(part, len(calls), response_id)
            if call is not None:
                calls.append(call)
        message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if calls:
            message["tool_calls"] = calls
        index = candidate.get("index")
        choices.append(
            {
                "index": index if isinstance(index, int) else n,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            }
        )
    if not choices:
        message = {"role": "assistant", "content": None}
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"})
    raw_usage = reply.get("usageMetadata")
    usage = usage_of(raw_usage if isinstance(raw_usage, dict) else {})
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.get("modelVersion"),
        "choices": choices,
        "usage": openai_usage(usage),
    }
