"""A Responses API request -> a Chat Completions request, for providers that speak only chat. Pure.

- ``input``: a string (one user message) or items: messages (``role`` user, assistant, system, developer;
  content a string or parts: ``input_text``/``output_text`` -> text, ``input_image`` -> ``image_url``,
  ``refusal`` -> text), ``function_call`` (an assistant tool call; consecutive ones join one message) and
  ``function_call_output`` (a ``tool`` message). ``reasoning`` items are dropped (chat cannot carry them
  back).
- ``instructions`` -> a first system message; ``developer`` messages -> system.
- ``tools`` (function tools only) and ``tool_choice``; ``parallel_tool_calls``.
- ``text.format``: ``json_schema`` -> ``response_format`` json_schema, ``json_object`` likewise.
- ``max_output_tokens`` -> ``max_tokens``; ``reasoning.effort`` -> ``reasoning_effort``; ``temperature``,
  ``top_p``, ``user``, ``stream`` as they are.

Refused with a 400 naming the field (:class:`~proxy.errors.InvalidRequest`): hosted tools (web search, file
search, computer use, code interpreter, MCP...), ``background``, stored prompts (``prompt``),
``conversation``, file inputs and item references: a chat-only target cannot honour them. Fields with no
effect on the answer's content (``store``, ``include``, ``truncation``, ``metadata``, ``service_tier``...)
are not sent.
"""

from __future__ import annotations

from proxy.errors import InvalidRequest
from proxy.plugin import JSONObject

MAX_ITEMS = 10_000  # input items one request may carry (the body's size bounds them too)

# Passed to chat as they are.
_SAME = ("temperature", "top_p", "user", "parallel_tool_calls", "stream")
# Refused on a translated route: the answer would silently differ from what the client asked for.
_REFUSED = {
    "background": "background responses are not supported on a route served through Chat Completions",
    "prompt": "stored prompts are not supported on a route served through Chat Completions",
    "conversation": "conversations are not supported here; use previous_response_id",
}
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def to_chat(body: JSONObject) -> JSONObject:
    """The chat request for ``body`` (a continued conversation's kept items are already in its
    ``input``: :mod:`proxy.responses.dialect`)."""
    for name, why in _REFUSED.items():
        if body.get(name) not in (None, False):
            raise InvalidRequest(f"'{name}': {why}.", param=name)
    messages: list[JSONObject] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    items = input_items(body.get("input"))
    if len(items) > MAX_ITEMS:
        raise InvalidRequest(f"'input' may hold at most {MAX_ITEMS} items.", param="input")
    for i, item in enumerate(items):
        _add_item(messages, item, f"input[{i}]")
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("'input' is required: the request has nothing to answer.", param="input")
    chat: JSONObject = {"model": body.get("model"), "messages": messages}
    for name in _SAME:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    tools = body.get("tools")
    if tools:
        chat["tools"] = _tools(tools)
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    text = body.get("text")
    if isinstance(text, dict) and text.get("format") is not None:
        response_format = _format(text["format"])
        if response_format is not None:
            chat["response_format"] = response_format
    return chat


def input_items(value: object) -> list[JSONObject]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidRequest("'input' must be a string or an array of items.", param="input")
    return value


def _add_item(messages: list[JSONObject], item: JSONObject, where: str) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise InvalidRequest(f"'{where}.role' must be user, assistant, system or developer.", param=where)
        messages.append({"role": role, "content": _content(item.get("content"), f"{where}.content")})
    elif kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise InvalidRequest(f"'{where}' needs 'call_id' and 'name' strings.", param=where)
        arguments = item.get("arguments")
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else "{}"},
        }
        last = messages[-1] if messages else None
        calls = last.get("tool_calls") if last is not None else None
        if last is not None and last["role"] == "assistant" and isinstance(calls, list):
            calls.append(call)
        elif last is not None and last["role"] == "assistant" and "tool_calls" not in last:
            last["tool_calls"] = [call]  # the text that came with the calls, then the calls
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"'{where}.call_id' must be a string.", param=where)
        output = item.get("output")
        if isinstance(output, list):
            output = _text_of(output, f"{where}.output")
        elif not isinstance(output, str):
            output = "" if output is None else str(output)
        messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
    elif kind == "reasoning":
        return  # chat has no way to send a reasoning item back
    else:
        raise InvalidRequest(
            f"'{where}.type' {kind!r} cannot be sent to a model served through Chat Completions "
            "(message, function_call, function_call_output and reasoning items can).",
            param=f"{where}.type",
        )


def _content(content: object, where: str) -> object:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of parts.", param=where)
    parts: list[JSONObject] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise InvalidRequest(f"'{where}[{i}]' must be an object.", param=where)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: JSONObject = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            what = "an image by file_id" if kind == "input_image" else repr(kind)
            raise InvalidRequest(
                f"'{where}[{i}]': {what} cannot be sent to a model served through Chat Completions.",
                param=f"{where}[{i}].type",
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)  # plain text: what every chat server takes
    return parts


def _text_of(parts: list[object], where: str) -> str:
    text = _content(parts, where)
    if not isinstance(text, str):
        raise InvalidRequest(f"'{where}' may hold only text here.", param=where)
    return text


def _tools(tools: object) -> list[JSONObject]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out: list[JSONObject] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or kind != "function":
            raise InvalidRequest(
                f"'tools[{i}]': the {kind!r} tool is hosted by OpenAI and cannot run on a model served "
                "through Chat Completions; only function tools can.",
                param=f"tools[{i}].type",
            )
        if not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"'tools[{i}].name' must be a string.", param=f"tools[{i}].name")
        function: JSONObject = {"name": tool["name"]}
        for field in ("description", "parameters", "strict"):
            if tool.get(field) is not None:
                function[field] = tool[field]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object) -> object:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "'tool_choice' must be auto, none, required or a function tool here.", param="tool_choice"
    )


def _format(fmt: object) -> JSONObject | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if not isinstance(fmt, dict) or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: JSONObject = {"name": fmt.get("name") or "response", "schema": fmt.get("schema")}
        for field in ("strict", "description"):
            if fmt.get(field) is not None:
                schema[field] = fmt[field]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(f"'text.format.type' {kind!r} is not supported.", param="text.format.type")
