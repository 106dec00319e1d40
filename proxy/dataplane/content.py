"""What a trace records of a conversation when ``telemetry.capture_content`` is on: the request's
messages and a non-streamed answer's, as the GenAI conventions' ``gen_ai.input.messages`` /
``gen_ai.output.messages`` (JSON), only their roles and text, each text clipped to ``MAX_TEXT``
characters and at most ``MAX_MESSAGES`` messages (the last ones). A streamed answer's text is not recorded:
the relay passes bytes through without keeping them."""

from __future__ import annotations

import orjson

MAX_TEXT = 1000  # characters of one message's text
MAX_MESSAGES = 20  # messages of one request (the last ones: the newest turn matters most)


def input_messages(body: dict[str, object]) -> str | None:
    """The request's messages (chat) or prompt (completions) as a JSON attribute value."""
    messages = body.get("messages")
    out: list[dict[str, str]] = []
    if isinstance(messages, list):
        for message in messages[-MAX_MESSAGES:]:
            if isinstance(message, dict):
                out.append(
                    {"role": str(message.get("role", ""))[:32], "content": _text(message.get("content"))}
                )
    elif "prompt" in body:
        out.append({"role": "user", "content": _text(body["prompt"])})
    elif "input" in body:
        out.append({"role": "user", "content": _text(body["input"])})
    return orjson.dumps(out).decode() if out else None


def output_messages(reply: bytes) -> str | None:
    """A non-streamed chat or completions answer's text, or None when it has none to show."""
    try:
        data = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        return None
    out: list[dict[str, str]] = []
    for choice in choices[:MAX_MESSAGES]:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        out.append({"role": "assistant", "content": _text(text)})
    return orjson.dumps(out).decode() if out else None


def _text(content: object) -> str:
    """The text of a message's content: a string, or the text parts of a list (images etc. left out)."""
    if isinstance(content, str):
        return content[:MAX_TEXT]
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                parts.append(text)
        return "".join(parts)[:MAX_TEXT]
    return ""
