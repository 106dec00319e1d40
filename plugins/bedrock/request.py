"""OpenAI chat -> Bedrock Converse: the request side of the translation (pure, no network).

- ``system`` and ``developer`` messages -> ``system`` text blocks.
- ``user``/``assistant`` keep their role; ``tool`` messages become ``toolResult`` blocks of a user turn
  (``json`` when the result is a JSON object, else ``text``). Consecutive turns of one role are merged:
  Converse requires alternating roles.
- Parts: ``text``; ``image_url`` with a ``data:image/{png,jpeg,gif,webp};base64,`` URL -> ``image`` with
  base64 ``bytes`` (Converse takes no image URLs).
- Assistant ``tool_calls`` -> ``toolUse`` blocks (``toolUseId``, ``name``, ``input`` object).
- ``tools`` -> ``toolConfig.tools[].toolSpec`` (``inputSchema.json``); ``tool_choice`` auto/required/named
  -> ``{auto}``/``{any}``/``{tool: {name}}``; ``none`` has no Converse form (400).
- ``inferenceConfig``: ``max_completion_tokens``/``max_tokens`` -> ``maxTokens``, ``temperature``,
  ``top_p`` -> ``topP``, ``stop`` -> ``stopSequences``.

Ignored on purpose: ``stream`` (the URL says it), ``stream_options``, ``user``, ``store``, ``metadata``,
``service_tier``, ``parallel_tool_calls``, ``prompt_cache_key``, ``safety_identifier``. Any other field
raises :class:`RequestRejected` (a 400 naming it).
"""

from __future__ import annotations

import orjson

from plugins.bedrock.errors import RequestRejected
from proxy.plugin import JSONObject

_IGNORED = frozenset(
    {"model", "stream", "stream_options", "user", "store", "metadata", "service_tier", "parallel_tool_calls"}
    | {"prompt_cache_key", "safety_identifier"}
)
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "n": (None, 1),
    "logprobs": (None, False),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "logit_bias": (None, {}),
    "modalities": (None, ["text"]),
    "response_format": (None, {"type": "text"}),
    "functions": (None, []),
    "function_call": (None,),
}
_HANDLED = frozenset(
    {"messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools"}
    | {"tool_choice"}
)
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif"}
_IMAGE_FORMATS["image/webp"] = "webp"


def to_converse(body: JSONObject) -> JSONObject:
    """Translate an OpenAI chat body into a Converse body (the model id goes in the URL)."""
    for key, value in body.items():
        if key in _HANDLED or key in _IGNORED:
            continue
        if key not in _NEUTRAL:
            raise RequestRejected(key, f"'{key}' is not supported for Bedrock models")
        if value not in _NEUTRAL[key]:
            raise RequestRejected(key, f"'{key}' = {value!r} is not supported for Bedrock models")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected("messages", "'messages' must be a non-empty array")
    system, turns = _conversation(messages)
    out: JSONObject = {"messages": turns}
    if system:
        out["system"] = system
    config = _inference_config(body)
    if config:
        out["inferenceConfig"] = config
    tools = _tool_config(body)
    if tools:
        out["toolConfig"] = tools
    return out


def _conversation(messages: list[object]) -> tuple[list[JSONObject], list[JSONObject]]:
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise RequestRejected(where, f"{where} must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(b for b in _blocks(msg.get("content"), f"{where}.content") if "text" in b)
            continue
        if role == "user":
            turn, blocks = "user", _blocks(msg.get("content"), f"{where}.content")
        elif role == "assistant":
            turn, blocks = "assistant", _assistant(msg, where)
        elif role == "tool":
            turn, blocks = "user", [_tool_result(msg, where)]
        else:
            raise RequestRejected(f"{where}.role", f"role {role!r} is not supported for Bedrock models")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn:
            previous = turns[-1]["content"]
            assert isinstance(previous, list)
            previous.extend(blocks)
        else:
            turns.append({"role": turn, "content": blocks})
    if not turns:
        raise RequestRejected("messages", "the conversation has no user or assistant message")
    return system, turns


def _blocks(content: object, where: str) -> list[JSONObject]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise RequestRejected(where, f"{where} must be a string or an array of parts")
    blocks: list[JSONObject] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        here = f"{where}[{j}]"
        if isinstance(part, dict) and kind in ("text", "refusal") and isinstance(part.get(kind), str):
            blocks.append({"text": part[kind]})
        elif isinstance(part, dict) and kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image(url, f"{here}.image_url.url"))
        else:
            message = f"content part {kind!r} at {here} is not supported for Bedrock"
            raise RequestRejected(f"{here}.type", message)
    return blocks


def _image(url: object, where: str) -> JSONObject:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise RequestRejected(where, "Bedrock takes images as data:image/<format>;base64,<data> URLs")
    header, sep, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    fmt = _IMAGE_FORMATS.get(media_type.lower())
    if not sep or encoding != "base64" or fmt is None:
        raise RequestRejected(where, "images must be data:image/{png,jpeg,gif,webp};base64,<data> URLs")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _assistant(msg: JSONObject, where: str) -> list[JSONObject]:
    blocks = _blocks(msg.get("content"), f"{where}.content")
    calls = msg.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestRejected(f"{where}.tool_calls[{j}]", "a tool call needs an id and function.name")
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            args = None
        if not isinstance(args, dict):
            here = f"{where}.tool_calls[{j}].function.arguments"
            raise RequestRejected(here, "tool call arguments must be a JSON object")
        blocks.append({"toolUse": {"toolUseId": call.get("id"), "name": fn["name"], "input": args}})
    return blocks


def _tool_result(msg: JSONObject, where: str) -> JSONObject:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise RequestRejected(f"{where}.tool_call_id", "a tool message needs tool_call_id")
    content = msg.get("content")
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        content = "".join(texts)
    text = content if isinstance(content, str) else ""
    try:
        parsed = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        parsed = None
    block: JSONObject = {"json": parsed} if isinstance(parsed, dict) else {"text": text}
    return {"toolResult": {"toolUseId": call_id, "content": [block]}}


def _inference_config(body: JSONObject) -> JSONObject:
    config: JSONObject = {}
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RequestRejected(key, f"'{key}' must be a positive integer")
            config["maxTokens"] = value
            break
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    return config


def _tool_config(body: JSONObject) -> JSONObject | None:
    tools: list[JSONObject] = []
    raw = body.get("tools")
    for j, tool in enumerate(raw if isinstance(raw, list) else []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise RequestRejected(f"tools[{j}]", "only function tools are supported for Bedrock models")
        schema = fn.get("parameters") or {"type": "object", "properties": {}}
        spec: JSONObject = {"name": fn.get("name"), "inputSchema": {"json": schema}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append({"toolSpec": spec})
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise RequestRejected("tool_choice", "tool_choice needs tools")
        return None
    config: JSONObject = {"tools": tools}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "none":
        raise RequestRejected("tool_choice", "tool_choice 'none' has no Bedrock form: send no tools instead")
    elif choice is not None:
        fn = choice.get("function") if isinstance(choice, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestRejected("tool_choice", f"tool_choice {choice!r} is not supported")
        config["toolChoice"] = {"tool": {"name": fn["name"]}}
    return config
