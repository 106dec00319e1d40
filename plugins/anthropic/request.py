"""OpenAI chat -> Anthropic Messages: the request side of the translation (pure, no network).

Request (``to_messages``): an OpenAI chat body becomes a Messages body.

- ``system`` and ``developer`` messages, wherever they stand, join the top-level ``system`` blocks.
- ``user``/``assistant`` messages keep their role; ``tool`` messages become ``tool_result`` blocks of a user
  message. Consecutive messages of one role are merged, so ``[tool, tool, user]`` is one user message whose
  tool results come first: Anthropic rejects a tool_use not followed at once by its results
  (``anthropic/error-400-invalid-request.json``).
- Parts: ``text``; ``image_url`` (http(s) -> url source, ``data:`` -> base64 source); ``file`` with a
  ``data:`` PDF -> ``document``. A part's ``cache_control`` is carried over (prompt caching).
- ``tools`` -> ``{name, description, input_schema}``; ``tool_choice`` auto/none/required(any)/named;
  ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
- ``max_completion_tokens`` or ``max_tokens`` (default 4096: Anthropic requires one), ``temperature``,
  ``top_p``, ``stop`` -> ``stop_sequences``, ``user``/``safety_identifier``/``metadata.user`` ->
  ``metadata.user_id``. Anthropic extensions ``top_k`` and ``thinking`` pass through.
- ``response_format``: ``json_schema`` and ``json_object`` become one forced tool (``json_response``)
  whose input is returned as the message content; Anthropic has no JSON mode, a forced tool is what works
  on every Claude model. Not combinable with ``tools`` (400). ``text`` is the default and ignored.
- ``reasoning_effort`` -> ``thinking {type: enabled, budget_tokens}`` (see ``_EFFORT_BUDGET``).

Ignored on purpose: ``stream_options`` (usage is always read; the usage chunk is sent when the client asked),
``service_tier``, ``store``, ``seed``, ``prompt_cache_key``, ``parallel_tool_calls: true`` (the default),
other ``metadata`` keys, message ``name``, and neutral values of unsupported fields (``n: 1``,
``logprobs: false``, penalties of 0, ``modalities: ["text"]``). Any other unsupported or unknown field
raises :class:`RequestRejected` (a 400 naming the field) instead of being silently dropped.
"""

from __future__ import annotations

import orjson

from plugins.anthropic.errors import RequestRejected
from plugins.anthropic.reply import JSON_TOOL
from proxy.plugin import JSONObject

DEFAULT_MAX_TOKENS = 4096
# Thinking budgets for OpenAI's effort levels; Anthropic's minimum budget is 1024.
_EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 4096, "high": 8192, "xhigh": 16384}
_MIN_BUDGET = 1024

_IGNORED = frozenset({"stream_options", "service_tier", "store", "seed", "prompt_cache_key", "metadata"})
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "n": (None, 1),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),
    "functions": (None, []),
    "function_call": (None,),
    "verbosity": (None, "medium"),
}
_HANDLED = frozenset(
    {"model", "messages", "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k"}
    | {"stop", "user", "safety_identifier", "tools", "tool_choice", "parallel_tool_calls"}
    | {"response_format", "reasoning_effort", "thinking"}
)


def to_messages(body: JSONObject, model: str, stream: bool) -> JSONObject:
    """Translate an OpenAI chat body into an Anthropic Messages body for ``model``."""
    for key, value in body.items():
        if key in _HANDLED or key in _IGNORED:
            continue
        if key not in _NEUTRAL:
            raise RequestRejected(key, f"'{key}' is not supported for Anthropic models")
        if value not in _NEUTRAL[key]:
            raise RequestRejected(key, f"'{key}' = {value!r} is not supported for Anthropic models")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected("messages", "'messages' must be a non-empty array")
    system, turns = _conversation(messages)
    out: JSONObject = {"model": model, "messages": turns, "max_tokens": _max_tokens(body)}
    if system:
        out["system"] = system
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    user = _user_id(body)
    if user:
        out["metadata"] = {"user_id": user}
    _tools(body, out)
    _thinking(body, out)
    if stream:
        out["stream"] = True
    return out


def _max_tokens(body: JSONObject) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RequestRejected(key, f"'{key}' must be a positive integer")
            return value
    return DEFAULT_MAX_TOKENS


def _user_id(body: JSONObject) -> str | None:
    meta = body.get("metadata")
    candidates = [body.get("user"), body.get("safety_identifier")]
    if isinstance(meta, dict):
        candidates.append(meta.get("user"))
    return next((c for c in candidates if isinstance(c, str) and c), None)


def _conversation(messages: list[object]) -> tuple[list[JSONObject], list[JSONObject]]:
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise RequestRejected(where, f"{where} must be an object")
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            # Anthropic rejects empty text blocks; an empty system prompt means "none"
            system.extend(b for b in _blocks(content, f"{where}.content") if b.get("text") != "")
            continue
        if role == "user":
            blocks = _blocks(content, f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(msg, where)
            role = "assistant"
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise RequestRejected(f"{where}.tool_call_id", "a tool message needs its tool_call_id")
            result: JSONObject = {"type": "tool_result", "tool_use_id": call_id}
            result["content"] = content if isinstance(content, str) else _blocks(content, f"{where}.content")
            blocks, role = [result], "user"
        else:
            raise RequestRejected(f"{where}.role", f"role {role!r} is not supported for Anthropic models")
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            assert isinstance(previous, list)
            previous.extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _assistant_blocks(msg: JSONObject, where: str) -> list[JSONObject]:
    content = msg.get("content")
    blocks = [b for b in _blocks(content, f"{where}.content") if b.get("text") != ""]
    calls = msg.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else []):
        path = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestRejected(path, f"{path} must be a function call with a name")
        arguments = fn.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise RequestRejected(f"{path}.function.arguments", "tool call arguments must be a JSON object")
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": parsed})
    return blocks


def _blocks(content: object, where: str) -> list[JSONObject]:
    """OpenAI message content (a string, null, or a list of parts) -> Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise RequestRejected(where, f"{where} must be a string or an array of parts")
    blocks = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}[{j}]")
        if isinstance(part, dict) and isinstance(part.get("cache_control"), dict):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _part(part: object, where: str) -> JSONObject:
    kind = part.get("type") if isinstance(part, dict) else None
    if isinstance(part, dict) and kind in ("text", "refusal"):
        text = part.get(kind)
        if isinstance(text, str):
            return {"type": "text", "text": text}
    elif isinstance(part, dict) and kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        if isinstance(url, str) and url.startswith("data:"):
            return {"type": "image", "source": _data_url(url, f"{where}.image_url.url")}
    elif isinstance(part, dict) and kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        if isinstance(data, str) and data.startswith("data:"):
            return {"type": "document", "source": _data_url(data, f"{where}.file.file_data")}
    raise RequestRejected(f"{where}.type", f"content part {kind!r} at {where} is not supported for Anthropic")


def _data_url(url: str, where: str) -> JSONObject:
    header, sep, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise RequestRejected(where, "data URLs must look like data:<media-type>;base64,<data>")
    return {"type": "base64", "media_type": media_type, "data": data}


def _tools(body: JSONObject, out: JSONObject) -> None:
    tools: list[JSONObject] = []
    raw = body.get("tools")
    for j, tool in enumerate(raw if isinstance(raw, list) else []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise RequestRejected(f"tools[{j}]", "only function tools are supported for Anthropic models")
        schema = fn.get("parameters") or {"type": "object", "properties": {}}
        spec: JSONObject = {"name": fn.get("name"), "input_schema": schema}
        if fn.get("description"):
            spec["description"] = fn["description"]
        if isinstance(tool.get("cache_control"), dict):
            spec["cache_control"] = tool["cache_control"]
        tools.append(spec)
    choice = _tool_choice(body.get("tool_choice"))
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        if tools:
            raise RequestRejected("response_format", "response_format cannot be combined with tools here")
        wanted = fmt.get("json_schema")
        schema = wanted.get("schema") if isinstance(wanted, dict) else None
        tools = [
            {
                "name": JSON_TOOL,
                "description": "Answer with this tool; its input is the JSON response.",
                "input_schema": schema if isinstance(schema, dict) else {"type": "object"},
            }
        ]
        choice = {"type": "tool", "name": JSON_TOOL}
    elif isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise RequestRejected("response_format", f"response_format {fmt.get('type')!r} is not supported")
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice


def _tool_choice(choice: object) -> JSONObject | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    fn = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return {"type": "tool", "name": fn["name"]}
    raise RequestRejected("tool_choice", f"tool_choice {choice!r} is not supported")


def _thinking(body: JSONObject, out: JSONObject) -> None:
    thinking = body.get("thinking")
    if isinstance(thinking, dict):  # Anthropic's own option, sent by clients that know it
        out["thinking"] = thinking
        return
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    if not isinstance(effort, str) or effort not in _EFFORT_BUDGET:
        raise RequestRejected("reasoning_effort", f"reasoning_effort {effort!r} is not supported")
    budget = _EFFORT_BUDGET[effort]
    max_tokens = out["max_tokens"]
    assert isinstance(max_tokens, int)
    if body.get("max_completion_tokens") is None and body.get("max_tokens") is None:
        out["max_tokens"] = budget + DEFAULT_MAX_TOKENS  # room for the answer after the thinking
    elif max_tokens <= _MIN_BUDGET:
        raise RequestRejected("max_tokens", f"reasoning needs max_tokens above {_MIN_BUDGET}")
    else:  # Anthropic requires budget_tokens < max_tokens; keep half for the answer
        budget = max(_MIN_BUDGET, min(budget, max_tokens // 2))
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
