"""OpenAI chat -> Gemini ``generateContent``: the request side of the translation (pure, no network).

- ``system`` and ``developer`` messages join ``systemInstruction``.
- ``user`` -> role ``user``, ``assistant`` -> role ``model``; ``tool`` messages become ``functionResponse``
  parts of a user turn (named after the call they answer, found by its id in the assistant's
  ``tool_calls``). Consecutive turns of one role are merged: the answers to parallel calls travel together.
- Parts: ``text``; ``image_url`` / ``input_audio`` / ``file`` with base64 data -> ``inlineData``
  (``data:`` URLs only: Gemini does not fetch arbitrary URLs).
- Assistant ``tool_calls`` -> ``functionCall`` parts (arguments parsed to an object), with the
  ``thoughtSignature`` the reply carried (``extra_content.google.thought_signature``, Google's own name in
  its OpenAI-compatible API) sent back: thinking models need it to go on after a call.
- ``tools`` -> ``functionDeclarations`` (``parametersJsonSchema``: the JSON Schema as given);
  ``tool_choice`` auto/none/required/named -> ``functionCallingConfig`` AUTO/NONE/ANY(+allowed names).
- ``generationConfig``: ``max_completion_tokens``/``max_tokens`` -> ``maxOutputTokens``, ``temperature``,
  ``top_p``, ``top_k``, ``stop`` -> ``stopSequences``, ``n`` -> ``candidateCount``, ``seed``,
  ``presence_penalty``, ``frequency_penalty``; ``response_format`` json_object/json_schema ->
  ``responseMimeType`` (+ ``responseJsonSchema``); ``reasoning_effort`` -> ``thinkingConfig.thinkingBudget``.

Ignored on purpose: ``stream_options`` (usage is always read), ``user``, ``store``, ``metadata``,
``service_tier``, ``parallel_tool_calls``, ``prompt_cache_key``, ``safety_identifier``, message ``name``.
Any other field raises :class:`RequestRejected` (a 400 naming it) instead of being dropped silently.
"""

from __future__ import annotations

import orjson

from plugins.gemini.errors import RequestRejected
from proxy.plugin import JSONObject

_IGNORED = frozenset(
    {"stream", "stream_options", "user", "store", "metadata", "service_tier", "parallel_tool_calls"}
    | {"prompt_cache_key", "safety_identifier", "model"}
)
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "modalities": (None, ["text"]),
    "functions": (None, []),
    "function_call": (None,),
}
_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# Thinking budgets (tokens) for OpenAI's effort levels; 0 turns thinking off where the model allows it.
_EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_HANDLED = frozenset(
    {"messages", "max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice", "response_format"}
    | {"reasoning_effort"}
    | set(_CONFIG)
)


def to_gemini(body: JSONObject) -> JSONObject:
    """Translate an OpenAI chat body into a ``generateContent`` body (the model goes in the URL)."""
    for key, value in body.items():
        if key in _HANDLED or key in _IGNORED:
            continue
        if key not in _NEUTRAL:
            raise RequestRejected(key, f"'{key}' is not supported for Gemini models")
        if value not in _NEUTRAL[key]:
            raise RequestRejected(key, f"'{key}' = {value!r} is not supported for Gemini models")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected("messages", "'messages' must be a non-empty array")
    system, contents = _conversation(messages)
    out: JSONObject = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    _tools(body, out)
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def _conversation(messages: list[object]) -> tuple[list[JSONObject], list[JSONObject]]:
    system: list[JSONObject] = []
    contents: list[JSONObject] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the tool messages that answer it
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise RequestRejected(where, f"{where} must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(msg.get("content"), f"{where}.content", text_only=True))
            continue
        if role == "user":
            turn, parts = "user", _parts(msg.get("content"), f"{where}.content")
        elif role == "assistant":
            turn, parts = "model", _assistant_parts(msg, where, names)
        elif role == "tool":
            turn, parts = "user", [_tool_result(msg, where, names)]
        else:
            raise RequestRejected(f"{where}.role", f"role {role!r} is not supported for Gemini models")
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:
            previous = contents[-1]["parts"]
            assert isinstance(previous, list)
            previous.extend(parts)
        else:
            contents.append({"role": turn, "parts": parts})
    if not contents:
        raise RequestRejected("messages", "the conversation has no user or assistant message")
    return system, contents


def _parts(content: object, where: str, text_only: bool = False) -> list[JSONObject]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise RequestRejected(where, f"{where} must be a string or an array of parts")
    parts: list[JSONObject] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        here = f"{where}[{j}]"
        if isinstance(part, dict) and kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif isinstance(part, dict) and not text_only and kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_inline(url, f"{here}.image_url.url"))
        elif isinstance(part, dict) and not text_only and kind == "file":
            file = part.get("file")
            parts.append(_inline(file.get("file_data") if isinstance(file, dict) else None, f"{here}.file"))
        elif isinstance(part, dict) and not text_only and kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, dict) else None
            fmt = audio.get("format") if isinstance(audio, dict) else None
            if not isinstance(data, str) or not isinstance(fmt, str):
                raise RequestRejected(f"{here}.input_audio", "input_audio needs data and format")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": data}})
        else:
            message = f"content part {kind!r} at {here} is not supported for Gemini"
            raise RequestRejected(f"{here}.type", message)
    return parts


def _inline(url: object, where: str) -> JSONObject:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise RequestRejected(where, "Gemini takes images and files as data:<media-type>;base64,<data> URLs")
    header, sep, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise RequestRejected(where, "data URLs must look like data:<media-type>;base64,<data>")
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _assistant_parts(msg: JSONObject, where: str, names: dict[str, str]) -> list[JSONObject]:
    content = msg.get("content")
    parts: list[JSONObject] = []
    if isinstance(content, list):
        parts = [
            {"text": p[k]}
            for p in content
            if isinstance(p, dict)
            for k in ("text", "refusal")
            if isinstance(p.get(k), str) and p[k]
        ]
    elif isinstance(content, str) and content:
        parts = [{"text": content}]
    calls = msg.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestRejected(f"{where}.tool_calls[{j}]", "a tool call needs function.name")
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            args = None
        if not isinstance(args, dict):
            raise RequestRejected(
                f"{where}.tool_calls[{j}].function.arguments", "tool call arguments must be a JSON object"
            )
        if isinstance(call.get("id"), str):
            names[call["id"]] = fn["name"]
        part: JSONObject = {"functionCall": {"name": fn["name"], "args": args}}
        signature = _signature(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _signature(call: JSONObject) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _tool_result(msg: JSONObject, where: str, names: dict[str, str]) -> JSONObject:
    call_id = msg.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        message = "a tool message must answer a tool call made before it"
        raise RequestRejected(f"{where}.tool_call_id", message)
    content = msg.get("content")
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        content = "".join(texts)
    try:
        parsed = orjson.loads(content) if isinstance(content, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    # functionResponse.response must be an object: a JSON object result as it is, anything else wrapped.
    response = parsed if isinstance(parsed, dict) else {"result": content}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(body: JSONObject, out: JSONObject) -> None:
    declarations: list[JSONObject] = []
    raw = body.get("tools")
    for j, tool in enumerate(raw if isinstance(raw, list) else []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise RequestRejected(f"tools[{j}]", "only function tools are supported for Gemini models")
        declaration: JSONObject = {"name": fn.get("name")}
        if fn.get("description"):
            declaration["description"] = fn["description"]
        if isinstance(fn.get("parameters"), dict) and fn["parameters"]:
            declaration["parametersJsonSchema"] = fn["parameters"]
        declarations.append(declaration)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    if choice is None:
        return
    config: JSONObject
    if choice in ("auto", "none"):
        config = {"mode": str(choice).upper()}
    elif choice == "required":
        config = {"mode": "ANY"}
    else:
        fn = choice.get("function") if isinstance(choice, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestRejected("tool_choice", f"tool_choice {choice!r} is not supported")
        config = {"mode": "ANY", "allowedFunctionNames": [fn["name"]]}
    out["toolConfig"] = {"functionCallingConfig": config}


def _generation_config(body: JSONObject) -> JSONObject:
    config: JSONObject = {}
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RequestRejected(key, f"'{key}' must be a positive integer")
            config["maxOutputTokens"] = value
            break
    for key, name in _CONFIG.items():
        if body.get(key) is not None:
            config[name] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        wanted = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = wanted.get("schema") if isinstance(wanted, dict) else None
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    elif fmt is not None and kind != "text":
        raise RequestRejected("response_format", f"response_format {kind!r} is not supported")
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORT_BUDGET:
            raise RequestRejected("reasoning_effort", f"reasoning_effort {effort!r} is not supported")
        config["thinkingConfig"] = {"thinkingBudget": _EFFORT_BUDGET[effort]}
    return config
