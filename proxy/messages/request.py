"""Anthropic Messages request -> OpenAI chat request. Pure: no network.

What maps (``to_chat``):

- ``system`` (a string or text blocks) -> a leading ``system`` message;
- ``messages``: ``text`` -> text, ``image`` (``base64`` or ``url`` source) -> ``image_url`` part, ``document``
  (a base64 PDF or plain text) -> ``file`` part or text; an assistant's ``tool_use`` -> ``tool_calls`` (the
  input as a JSON string); a user's ``tool_result`` -> a ``tool`` message before the rest of that turn
  (chat wants the answers right after the calls; its images and documents follow in the user message);
  ``thinking`` and ``redacted_thinking`` blocks are the model's own and are left out;
- ``tools`` (client tools: ``name``, ``description``, ``input_schema``) -> function tools; ``tool_choice``
  ``auto``/``any``/``tool``/``none`` -> ``auto``/``required``/the named function/``none``, and
  ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``;
- ``max_tokens``, ``temperature``, ``top_p``, ``stream``; ``stop_sequences`` -> ``stop``;
  ``metadata.user_id`` -> ``user`` (up to 64 characters); ``thinking`` enabled with a budget ->
  ``reasoning_effort`` (``adaptive`` thinking and ``output_config.effort`` are not sent: see
  :func:`reasoning_effort`); ``output_config.format`` (a JSON schema) -> ``response_format``;
- ``top_k``, ``cache_control``, ``service_tier`` have no chat form and are dropped.

What cannot be expressed is a 400 naming the field (:class:`~proxy.errors.InvalidRequest`): Anthropic's
server tools (web search, code execution, computer use...), MCP servers, containers, unknown block types.
"""

from __future__ import annotations

import orjson

from proxy.errors import InvalidRequest
from proxy.plugin import JSONObject

# thinking.budget_tokens -> reasoning_effort: the budget below each bound gets that effort.
EFFORTS = ((4096, "low"), (16384, "medium"))
HIGH_EFFORT = "high"
OUTPUT_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
# Fields with no chat form that change where or how the request runs: refused rather than ignored.
REFUSED_FIELDS = ("mcp_servers", "container")
# OpenAI refuses a longer ``user``; Claude Code's ``metadata.user_id`` is longer, and is left out then.
MAX_USER = 64
# Fields copied as they are.
COPIED = ("max_tokens", "temperature", "top_p", "stream")


def to_chat(body: JSONObject) -> JSONObject:
    """The chat request for an Anthropic Messages body (see the module docstring)."""
    for name in REFUSED_FIELDS:
        if body.get(name):
            raise InvalidRequest(f"'{name}' cannot be served by this model's provider.", param=name)
    messages: list[JSONObject] = []
    system = _system(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    for i, turn in enumerate(turns):
        messages.extend(_turn(turn, f"messages[{i}]"))
    chat: JSONObject = {"model": body.get("model"), "messages": messages}
    for name in COPIED:
        if body.get(name) is not None:
            chat[name] = body[name]
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("'stop_sequences' must be an array of strings.", param="stop_sequences")
        if stop:
            chat["stop"] = stop
    tools = body.get("tools")
    if tools is not None:
        chat_tools = _tools(tools)
        if chat_tools:
            chat["tools"] = chat_tools
    _tool_choice(body.get("tool_choice"), chat)
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and 0 < len(user) <= MAX_USER:
        chat["user"] = user
    effort = reasoning_effort(body.get("thinking"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    output = body.get("output_config")
    if output is not None:
        _output_config(output, chat)
    return chat


def _output_config(output: object, chat: JSONObject) -> None:
    """``output_config``: ``format`` (a JSON schema) -> ``response_format``. Its ``effort`` is checked but
    not sent: Claude Code sends one with every request, whatever the model, and a chat model without
    reasoning refuses ``reasoning_effort`` (see :func:`reasoning_effort`)."""
    if not isinstance(output, dict):
        raise InvalidRequest("'output_config' must be an object.", param="output_config")
    fmt = output.get("format")
    if fmt is not None:
        schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "'output_config.format' must be a json_schema format with a 'schema' object.",
                param="output_config.format",
            )
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    effort = output.get("effort")
    if effort is not None and effort not in OUTPUT_EFFORTS:
        raise InvalidRequest(
            "'output_config.effort' must be low, medium, high, xhigh or max.", param="output_config.effort"
        )


def reasoning_effort(thinking: object) -> str | None:
    """The chat ``reasoning_effort`` for Anthropic's ``thinking``: only for thinking enabled with a
    budget, the client's explicit request (a budget under 4,096 tokens is ``low``, under 16,384 ``medium``,
    else ``high``). ``adaptive`` thinking lets the model decide, as a chat request without
    ``reasoning_effort`` does; Claude Code sends it with every request, to any model, and a chat model
    without reasoning refuses the field, so it is not sent."""
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        return None
    for bound, effort in EFFORTS:
        if budget < bound:
            return effort
    return HIGH_EFFORT


def _system(system: object) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
            if not isinstance(text, str):
                raise InvalidRequest(f"'system[{i}]' must be a text block.", param=f"system[{i}]")
            texts.append(text)
        return "\n\n".join(texts)
    raise InvalidRequest("'system' must be a string or an array of text blocks.", param="system")


def _turn(turn: object, path: str) -> list[JSONObject]:
    """One Anthropic message -> the chat messages it becomes (tool results first, as separate messages)."""
    if not isinstance(turn, dict):
        raise InvalidRequest(f"'{path}' must be an object.", param=path)
    role = turn.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"'{path}.role' must be 'user' or 'assistant'.", param=f"{path}.role")
    content = turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"'{path}.content' must be a string or an array of content blocks.", param=f"{path}.content"
        )
    if role == "assistant":
        return [_assistant(content, path)]
    return _user(content, path)


def _assistant(blocks: list[object], path: str) -> JSONObject:
    texts: list[str] = []
    calls: list[JSONObject] = []
    for i, block in enumerate(blocks):
        where = f"{path}.content[{i}]"
        kind = _kind(block, where)
        assert isinstance(block, dict)
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            name, ident = block.get("name"), block.get("id")
            if not isinstance(name, str) or not isinstance(ident, str):
                raise InvalidRequest(f"'{where}' needs a string 'id' and 'name'.", param=where)
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function: JSONObject = {"name": name, "arguments": arguments}
            calls.append({"id": ident, "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's own reasoning: chat has no way to send it back
        else:
            raise InvalidRequest(f"'{where}': a '{kind}' block cannot be sent to this model.", param=where)
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _user(blocks: list[object], path: str) -> list[JSONObject]:
    results: list[JSONObject] = []
    parts: list[JSONObject] = []
    for i, block in enumerate(blocks):
        where = f"{path}.content[{i}]"
        kind = _kind(block, where)
        assert isinstance(block, dict)
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, where)})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, where)}})
        elif kind == "document":
            parts.append(_document(block, where))
        elif kind == "tool_result":
            results.append(_tool_result(block, where, parts))
        else:
            raise InvalidRequest(f"'{where}': a '{kind}' block cannot be sent to this model.", param=where)
    out = list(results)
    if parts:
        # A lone text part is sent as a string: every chat provider takes that.
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return out


def _kind(block: object, where: str) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        raise InvalidRequest(f"'{where}' must be a content block with a 'type'.", param=where)
    return kind


def _text(block: JSONObject, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"'{where}.text' must be a string.", param=f"{where}.text")
    return text


def _source(block: JSONObject, where: str) -> JSONObject:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"'{where}.source' must be an object.", param=f"{where}.source")
    return source


def _image_url(block: JSONObject, where: str) -> str:
    source = _source(block, where)
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise InvalidRequest(
        f"'{where}.source' must be a base64 image (media_type, data) or a url.", param=f"{where}.source"
    )


def _document(block: JSONObject, where: str) -> JSONObject:
    source = _source(block, where)
    kind, data = source.get("type"), source.get("data")
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": data}
    if kind == "base64" and isinstance(data, str) and isinstance(source.get("media_type"), str):
        file: JSONObject = {"file_data": f"data:{source['media_type']};base64,{data}"}
        title = block.get("title")
        file["filename"] = title if isinstance(title, str) and title else "document.pdf"
        return {"type": "file", "file": file}
    raise InvalidRequest(
        f"'{where}.source': only base64 and text documents can be sent to this model.",
        param=f"{where}.source",
    )


def _tool_result(block: JSONObject, where: str, parts: list[JSONObject]) -> JSONObject:
    """The ``tool`` message for a tool result. Chat's tool message holds text only: the images and
    documents a tool returned (a screenshot, a file read) go to ``parts``, the user message that follows
    the tool messages."""
    ident = block.get("tool_use_id")
    if not isinstance(ident, str):
        raise InvalidRequest(f"'{where}.tool_use_id' must be a string.", param=f"{where}.tool_use_id")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            inner = f"{where}.content[{j}]"
            kind = _kind(part, inner)
            assert isinstance(part, dict)
            if kind == "text":
                texts.append(_text(part, inner))
            elif kind == "image":
                parts.append({"type": "image_url", "image_url": {"url": _image_url(part, inner)}})
            elif kind == "document":
                parts.append(_document(part, inner))
            else:
                message = f"'{inner}': a '{kind}' block cannot be sent to this model."
                raise InvalidRequest(message, param=inner)
        text = "\n".join(texts)
    else:
        raise InvalidRequest(f"'{where}.content' must be a string or an array.", param=f"{where}.content")
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": ident, "content": text}


def _tools(tools: object) -> list[JSONObject]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out: list[JSONObject] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"'{where}' must be an object.", param=where)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            # web_search_*, bash_*, text_editor_*, computer_*, code_execution_*: run by Anthropic itself
            raise InvalidRequest(
                f"'{where}': the server tool '{kind}' is run by Anthropic and cannot be served by this "
                "model's provider.",
                param=where,
            )
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not isinstance(schema, dict):
            message = f"'{where}' needs a string 'name' and an object 'input_schema'."
            raise InvalidRequest(message, param=where)
        function: JSONObject = {"name": name, "parameters": schema}
        description = tool.get("description")
        if isinstance(description, str):
            function["description"] = description
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object, chat: JSONObject) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest(
            "'tool_choice' must be an object of type auto, any, tool or none.", param="tool_choice"
        )
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("'tool_choice.name' must be a string.", param="tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True and "tools" in chat:
        chat["parallel_tool_calls"] = False
