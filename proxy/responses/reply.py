"""A chat answer -> a Response object, the shape OpenAI's Responses API answers with. Pure.

The Response echoes what the request asked for (``instructions``, ``tools``, ``text``, ``temperature``...);
its ``output`` holds a ``reasoning`` item (the chat answer's ``reasoning_content``, as a summary), a
``message`` item (``output_text`` and ``refusal`` parts) and one ``function_call`` item per tool call;
``usage`` is the provider's, in the Responses API's names. ``status`` is ``incomplete``
(``incomplete_details.reason``: ``max_output_tokens`` or ``content_filter``) when the chat answer stopped
for length or a content filter.
"""

from __future__ import annotations

import secrets
import time

from proxy.plugin import JSONObject, Usage

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def skeleton(response_id: str, body: JSONObject, created: int | None = None) -> JSONObject:
    """A Response without output: what ``response.created`` carries, and the base of the final one."""
    text = body.get("text")
    reasoning = body.get("reasoning")
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()) if created is None else created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": reasoning if isinstance(reasoning, dict) else {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def usage_object(usage: Usage | None) -> JSONObject | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def message_item(item_id: str, text: str | None, refusal: str | None, status: str) -> JSONObject:
    content: list[JSONObject] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, text: str) -> JSONObject:
    """A chat answer's reasoning text (``reasoning_content``) as a reasoning item with a summary."""
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSONObject:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def finish(
    response: JSONObject, output: list[JSONObject], finish_reason: object, usage: Usage | None
) -> None:
    """Complete ``response`` in place: its output, status and usage."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    response["output"] = output
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = usage_object(usage)


def from_chat(response: JSONObject, completion: object, usage: Usage | None) -> JSONObject:
    """``response`` (a :func:`skeleton`) completed with a ``chat.completion`` object's first choice."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    output: list[JSONObject] = []
    thought = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thought, str) and thought:
        output.append(reasoning_item(new_id("rs"), thought))
    content, refusal = message.get("content"), message.get("refusal")
    status = "incomplete" if choice.get("finish_reason") in _INCOMPLETE else "completed"
    if content or refusal:
        output.append(
            message_item(
                new_id("msg"),
                content if isinstance(content, str) else None,
                refusal if isinstance(refusal, str) else None,
                status,
            )
        )
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        output.append(
            function_call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}",
                "completed",
            )
        )
    finish(response, output, choice.get("finish_reason"), usage)
    return response
