"""The Messages <-> chat translation (proxy.messages.request, .reply, .stream): pure functions
over recorded OpenAI-format streams, checked against the event grammar the anthropic SDK expects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from plugins.openai_compatible import OpenAIStreamReader
from proxy.dataplane.tap import StreamTap
from proxy.errors import InvalidRequest
from proxy.messages.errors import envelope, error_type, stream_error
from proxy.messages.reply import anthropic_usage, to_message
from proxy.messages.request import reasoning_effort, to_chat
from proxy.messages.stream import MessagesStream
from proxy.plugin import Usage
from proxy.upstream.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INDEX = {e["file"]: e for e in json.loads((FIXTURES / "index.json").read_text())}
EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


# -- request ---------------------------------------------------------------------------------------------


PDF = {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}


def test_full_request() -> None:
    body: Any = {
        "model": "m",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {}}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": True},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                "data": "JVBE"}, "title": "a.pdf"},
            ]},
        ],
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": True},
        "stop_sequences": ["X"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 4,
        "stream": True,
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 20000},
    }  # fmt: skip
    chat = to_chat(body)
    assert chat["messages"] == [
        {"role": "system", "content": "A\n\nB"},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
        {"role": "user", "content": [{"type": "file", "file": PDF}]},
    ]  # fmt: skip
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "w", "parameters": {"type": "object"}, "description": "weather"},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["parallel_tool_calls"] is False
    assert (chat["stop"], chat["temperature"], chat["top_p"], chat["stream"]) == (["X"], 0.5, 0.9, True)
    assert chat["user"] == "u" and chat["reasoning_effort"] == "high" and "top_k" not in chat


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice(choice: Any, expected: str) -> None:
    chat = to_chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": choice})
    assert chat["tool_choice"] == expected


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        (None, None),
        ({"type": "disabled"}, None),
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, "high"),
        ({"type": "adaptive"}, None),  # Claude Code's, to any model: the model decides
        ({"type": "adaptive", "budget_tokens": 0}, None),
        ({"type": "enabled"}, None),
    ],
)
def test_thinking_to_reasoning_effort(thinking: Any, effort: str | None) -> None:
    assert reasoning_effort(thinking) == effort


PNG = "data:image/png;base64,AAAA"


def test_images_a_tool_returned_follow_the_tool_message() -> None:
    shot = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "done"}, shot]}
    chat = to_chat({"model": "m", "messages": [{"role": "user", "content": [result]}]})
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
    ]


def test_a_long_user_id_is_left_out() -> None:
    turns = [{"role": "user", "content": "x"}]
    long_id = "user_" + "a" * 64 + "_account__session_0b6c"  # Claude Code's shape
    assert "user" not in to_chat({"model": "m", "messages": turns, "metadata": {"user_id": long_id}})
    assert to_chat({"model": "m", "messages": turns, "metadata": {"user_id": "u-1"}})["user"] == "u-1"


def test_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    output = {"format": {"type": "json_schema", "schema": schema}, "effort": "max"}
    chat = to_chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "output_config": output})
    assert chat["response_format"]["json_schema"] == {"name": "output", "schema": schema}
    assert "reasoning_effort" not in chat  # Claude Code sends an effort to any model


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
         "messages[0].content[0].source"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0]"),
        ({"tool_choice": {"type": "maybe"}}, "tool_choice"),
        ({"mcp_servers": [{"url": "https://x"}]}, "mcp_servers"),
        ({"system": [{"type": "image"}]}, "system[0]"),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format"),
        ({"output_config": {"effort": "huge"}}, "output_config.effort"),
    ],
)  # fmt: skip
def test_what_chat_cannot_express_is_a_400_naming_the_field(body: Any, param: str) -> None:
    full = {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(InvalidRequest) as err:
        to_chat(full)
    assert err.value.param == param


# -- reply -----------------------------------------------------------------------------------------------


A1 = '{"a":1}'


def test_reply_with_reasoning_text_and_tools() -> None:
    completion = {
        "id": "chatcmpl-9",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.", "reasoning_content": "think",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": A1}},
                           {"id": "c2", "type": "function", "function": {"name": "v", "arguments": "no"}}],
        }}],
    }  # fmt: skip
    usage = Usage(prompt_tokens=100, completion_tokens=9, cached_tokens=60, cache_write_tokens=10)
    message = to_message(completion, "my-model", usage)
    assert message["id"] == "msg_chatcmpl-9" and message["model"] == "my-model"
    assert message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "thinking", "thinking": "think", "signature": ""},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "c1", "name": "w", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "v", "input": {"arguments": "no"}},
    ]
    assert message["usage"] == {"input_tokens": 30, "output_tokens": 9, "cache_creation_input_tokens": 10,
                                "cache_read_input_tokens": 60}  # fmt: skip
    assert anthropic_usage(None) == {"input_tokens": 0, "output_tokens": 0}


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    completion = {"choices": [{"message": {"content": None, "refusal": "No."}, "finish_reason": "stop"}]}
    message = to_message(completion, "m", None)
    assert message["content"] == [{"type": "text", "text": "No."}] and message["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), (None, "end_turn")],
)
def test_stop_reasons(finish: str | None, stop: str) -> None:
    completion = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert to_message(completion, "m", None)["stop_reason"] == stop


# -- stream ----------------------------------------------------------------------------------------------


def translate(name: str, size: int) -> tuple[list[dict[str, Any]], MessagesStream]:
    data = (FIXTURES / name).read_bytes()
    reader = MessagesStream(OpenAIStreamReader(include_usage=True), "client-model")
    tap = StreamTap(reader)  # as the relay feeds it: the end of a stream that lost its last blank line
    out = bytearray()
    for pos in range(0, len(data), size):
        out += tap.feed(data[pos : pos + size])
        if tap.error is not None:
            break
    tap.close()
    client = SSEParser()
    events = client.feed(bytes(out))
    assert not client.close()
    payloads = []
    for event in events:
        if event.data is None:
            continue  # a comment the provider sent, passed on
        assert event.event is not None
        payload = orjson.loads(event.data)
        assert payload["type"] == event.event
        EVENTS.validate_python(payload)  # the SDK's own event types
        payloads.append(payload)
    return payloads, reader


def assemble(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Checks the event grammar and builds the message as a client would."""
    assert events[0]["type"] == "message_start"
    message = events[0]["message"]
    open_index: int | None = None
    json_parts: dict[int, str] = {}
    for i, ev in enumerate(events[1:], 1):
        kind = ev["type"]
        if kind == "content_block_start":
            assert open_index is None and ev["index"] == len(message["content"])
            open_index = ev["index"]
            message["content"].append(dict(ev["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][ev["index"]], ev["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            else:
                json_parts[ev["index"]] = json_parts.get(ev["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop":
            assert ev["index"] == open_index
            open_index = None
        elif kind == "message_delta":
            assert open_index is None
            message["stop_reason"] = ev["delta"]["stop_reason"]
            message["usage"].update(ev["usage"])
        elif kind == "message_stop":
            assert i == len(events) - 1
    for index, text in json_parts.items():
        message["content"][index]["input"] = json.loads(text)
    return message


STREAMS = [
    ("openai/chat-stream-include-usage.sse", ["text"], "end_turn"),
    ("openai/chat-stream-tool-calls.sse", ["tool_use"], "tool_use"),
    ("openai/chat-stream-parallel-tool-calls.sse", ["tool_use", "tool_use"], "tool_use"),
    ("openai/chat-stream-finish-length.sse", ["text"], "max_tokens"),
    ("deepseek/chat-stream-reasoning-content.sse", ["thinking", "text"], "end_turn"),
    ("deepseek/chat-stream-usage-on-finish-chunk.sse", ["text"], "end_turn"),
    ("openrouter/chat-stream-tool-call-usage-cost.sse", None, "tool_use"),
    ("openrouter/chat-stream-multiple-processing-comments.sse", None, "tool_use"),
    ("openai/chat-stream-usage-null-every-chunk.sse", ["text"], "end_turn"),
    ("openai/chat-stream-refusal.sse", ["text"], "refusal"),
    ("openai/chat-stream-long.sse", ["text"], "end_turn"),
    ("groq/chat-stream-usage-twice.sse", ["text"], "end_turn"),
    ("gemini/openai-compat-stream-tool-call.sse", None, "tool_use"),
    ("gemini/openai-compat-stream-usage-every-chunk.sse", ["text"], "end_turn"),
    ("quirks/crlf-line-endings.sse", ["text"], "end_turn"),
    ("quirks/cr-only-line-endings.sse", ["text"], "end_turn"),
    ("quirks/utf8-split-multibyte.sse", ["text"], "end_turn"),
    ("quirks/multiline-data.sse", ["text"], "end_turn"),
    ("quirks/data-no-space.sse", ["text"], "end_turn"),
    ("quirks/keepalive-comments.sse", ["text"], "end_turn"),
    ("quirks/extra-sse-fields.sse", ["text"], "end_turn"),
    ("quirks/no-done-terminator.sse", ["text"], "end_turn"),
]


@pytest.mark.parametrize("size", [1_000_000, 1, 7])
@pytest.mark.parametrize(("name", "kinds", "stop"), STREAMS, ids=[s[0] for s in STREAMS])
def test_recorded_chat_streams_become_messages_events(
    name: str, kinds: list[str] | None, stop: str, size: int
) -> None:
    events, reader = translate(name, size)
    message = assemble(events)
    assert events[-1]["type"] == "message_stop" and reader.complete and reader.error is None
    assert message["model"] == "client-model" and message["stop_reason"] == stop
    found = [b["type"] for b in message["content"]]
    if kinds is not None:
        assert found == kinds
    for block in message["content"]:
        if block["type"] == "tool_use":
            assert block["id"] and block["name"] and isinstance(block["input"], dict)
        elif block["type"] == "text":
            assert block["text"]
    expected = INDEX[name]["expected"].get("usage")
    assert reader.usage is not None and expected
    assert message["usage"]["output_tokens"] == expected["completion_tokens"]
    cached = reader.usage.cached_tokens + reader.usage.cache_write_tokens
    assert message["usage"]["input_tokens"] == expected["prompt_tokens"] - cached


def test_comments_are_passed_on() -> None:
    data = (FIXTURES / "openrouter/chat-stream-multiple-processing-comments.sse").read_bytes()
    tap = StreamTap(MessagesStream(OpenAIStreamReader(include_usage=True), "m"))
    out = tap.feed(data)
    assert out.startswith(b": OPENROUTER PROCESSING") and out.count(b": OPENROUTER PROCESSING") == 3


def test_stream_without_usage_ends_at_done() -> None:
    events, reader = translate("openai/chat-stream-no-usage.sse", 1_000_000)
    message = assemble(events)
    assert events[-1]["type"] == "message_stop" and reader.usage is None
    assert message["usage"]["output_tokens"] == 0 and reader.counted_output() > 0  # the estimate's source


def test_midstream_error_is_the_readers_error() -> None:
    events, reader = translate("openai/chat-stream-midstream-error.sse", 1_000_000)
    assert reader.error is not None and events[0]["type"] == "message_start"
    assert events[-1]["type"] != "message_stop"


def test_error_envelope() -> None:
    assert envelope(404, "nope") == {"type": "error", "error": {"type": "not_found_error", "message": "nope"}}
    assert [error_type(s) for s in (413, 422, 502, 529)] == [
        "request_too_large", "invalid_request_error", "api_error", "overloaded_error"
    ]  # fmt: skip
    line = stream_error("cut")
    assert line.startswith(b"event: error\ndata: ") and line.endswith(b"\n\n")
    assert orjson.loads(line.split(b"data: ", 1)[1])["error"] == {"type": "api_error", "message": "cut"}
