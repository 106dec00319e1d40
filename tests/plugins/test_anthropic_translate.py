"""The pure OpenAI <-> Anthropic translation: requests, replies, usage, errors."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest
from openai.types.chat import ChatCompletion

from plugins.anthropic.errors import RequestRejected, error_of
from plugins.anthropic.translate import (
    DEFAULT_MAX_TOKENS,
    JSON_TOOL,
    ReplyOptions,
    openai_usage,
    reply_options,
    to_chat_completion,
    to_messages,
    usage_of,
)
from proxy.plugin import Fault, JSONObject

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: list[object] = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather.", "parameters": WEATHER},
    },
    {"type": "function", "function": {"name": "get_time", "parameters": WEATHER}},
]


def translate(**body: object) -> JSONObject:
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return to_messages(dict(body), "claude-haiku-4-5", stream=False)


# ---------------------------------------------------------------- request


def test_minimal_request_gets_model_default_max_tokens_and_no_stream() -> None:
    out = to_messages({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}, "claude-x", False)
    assert out == {
        "model": "claude-x",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_stream_flag_is_carried() -> None:
    body: JSONObject = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    assert to_messages(body, "m", stream=True)["stream"] is True
    assert "stream" not in to_messages(body, "m", stream=False)


def test_system_and_developer_messages_become_system_blocks() -> None:
    out = translate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Late rule."},
        ]
    )
    assert out["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French."},
        {"type": "text", "text": "Late rule."},
    ]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_empty_system_prompt_is_no_system() -> None:
    assert "system" not in translate(
        messages=[{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}]
    )


def test_multi_turn_with_two_parallel_tool_calls_and_their_results() -> None:
    body: JSONObject = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "You help."},
            {"role": "user", "content": "Weather and time in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"city": "Paris"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:00"}]},
            {"role": "user", "content": "Thanks. And tomorrow?"},
            {"role": "assistant", "content": "Let me check."},
        ],
        "tools": TOOLS,
    }
    before = copy.deepcopy(body)
    out = to_messages(body, "claude-sonnet-4-5", stream=False)
    assert body == before  # the same call may go to another target: never mutate the client's body
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {"city": "Paris"}},
            ],
        },
        {
            # both results and the next user text in ONE user message, results first
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "14:00"}],
                },
                {"type": "text", "text": "Thanks. And tomorrow?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}]},
    ]
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather.", "input_schema": WEATHER},
        {"name": "get_time", "input_schema": WEATHER},
    ]


def test_assistant_text_and_tool_call_keep_order_and_empty_arguments_mean_empty_input() -> None:
    out = translate(
        messages=[
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": "Calling.",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "noon"},
        ]
    )
    messages = out["messages"]
    assert isinstance(messages, list)
    assert messages[1]["content"] == [
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "c", "name": "now", "input": {}},
    ]


def test_content_parts_images_documents_and_cache_control() -> None:
    parts = [
        {"type": "text", "text": "Describe", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]
    out = translate(messages=[{"role": "user", "content": parts}])
    messages = out["messages"]
    assert isinstance(messages, list)
    assert messages[0]["content"] == [
        {"type": "text", "text": "Describe", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}},
            "messages[0].content[0].image_url.url",
        ),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages[0].content[0].type"),
        (
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
            "messages[0].content[0].type",
        ),
    ],
)
def test_unsupported_content_parts_are_rejected(part: object, param: str) -> None:
    with pytest.raises(RequestRejected) as caught:
        translate(messages=[{"role": "user", "content": [part]}])
    assert caught.value.error.param == param


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"}),
    ],
)
def test_tool_choice(choice: object, expected: JSONObject) -> None:
    assert translate(tools=TOOLS, tool_choice=choice)["tool_choice"] == expected


def test_parallel_tool_calls() -> None:
    assert translate(tools=TOOLS, parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert translate(tools=TOOLS, tool_choice="required", parallel_tool_calls=False)["tool_choice"] == {
        "type": "any",
        "disable_parallel_tool_use": True,
    }
    assert translate(tools=TOOLS, tool_choice="none", parallel_tool_calls=False)["tool_choice"] == {
        "type": "none"
    }
    assert "tool_choice" not in translate(tools=TOOLS, parallel_tool_calls=True)


def test_non_function_tools_are_rejected() -> None:
    with pytest.raises(RequestRejected) as caught:
        translate(tools=[{"type": "web_search"}])
    assert caught.value.error.param == "tools[0]"


def test_sampling_and_limits() -> None:
    out = translate(
        max_tokens=100, max_completion_tokens=200, temperature=0.2, top_p=0.9, top_k=5, stop="END"
    )
    assert (out["max_tokens"], out["temperature"], out["top_p"], out["top_k"]) == (200, 0.2, 0.9, 5)
    assert out["stop_sequences"] == ["END"]
    assert translate(max_tokens=64, stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate(stop=None)
    with pytest.raises(RequestRejected) as caught:
        translate(max_tokens=0)
    assert caught.value.error.param == "max_tokens"


def test_user_becomes_metadata_user_id() -> None:
    assert translate(user="u-1")["metadata"] == {"user_id": "u-1"}
    assert translate(metadata={"user": "u-2", "team": "x"})["metadata"] == {"user_id": "u-2"}
    assert "metadata" not in translate(metadata={"team": "x"})


def test_response_format_json_schema_becomes_a_forced_tool() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER}}
    out = translate(response_format=fmt)
    assert out["tools"] == [
        {
            "name": JSON_TOOL,
            "description": "Answer with this tool; its input is the JSON response.",
            "input_schema": WEATHER,
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    tools = translate(response_format={"type": "json_object"})["tools"]
    assert isinstance(tools, list) and tools[0]["input_schema"] == {"type": "object"}
    assert "tools" not in translate(response_format={"type": "text"})
    with pytest.raises(RequestRejected) as caught:
        translate(response_format=fmt, tools=TOOLS)
    assert caught.value.error.param == "response_format"


@pytest.mark.parametrize(
    ("extra", "thinking", "max_tokens"),
    [
        ({"reasoning_effort": "low"}, {"type": "enabled", "budget_tokens": 2048}, 2048 + DEFAULT_MAX_TOKENS),
        (
            {"reasoning_effort": "high", "max_tokens": 20000},
            {"type": "enabled", "budget_tokens": 8192},
            20000,
        ),
        ({"reasoning_effort": "high", "max_tokens": 6000}, {"type": "enabled", "budget_tokens": 3000}, 6000),
        ({"reasoning_effort": "none"}, None, DEFAULT_MAX_TOKENS),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 5000}, "max_tokens": 9000},
            {"type": "enabled", "budget_tokens": 5000},
            9000,
        ),
    ],
)
def test_reasoning_options(extra: JSONObject, thinking: object, max_tokens: int) -> None:
    out = translate(**extra)
    assert out.get("thinking") == thinking
    assert out["max_tokens"] == max_tokens


def test_reasoning_needs_room() -> None:
    with pytest.raises(RequestRejected) as caught:
        translate(reasoning_effort="medium", max_tokens=1000)
    assert caught.value.error.param == "max_tokens"
    with pytest.raises(RequestRejected):
        translate(reasoning_effort="extreme")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 1),
        ("logit_bias", {"50256": -100}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("functions", [{"name": "f"}]),
        ("some_future_field", 1),
    ],
)
def test_unsupported_parameters_are_a_client_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(RequestRejected) as caught:
        translate(**{field: value})
    error = caught.value.error
    assert (error.status, error.fault, error.type, error.param) == (
        400,
        Fault.CLIENT,
        "invalid_request_error",
        field,
    )
    assert field in error.message


def test_neutral_and_documented_ignored_parameters_are_accepted_and_dropped() -> None:
    out = translate(
        n=1,
        logprobs=False,
        presence_penalty=0,
        frequency_penalty=0.0,
        modalities=["text"],
        stream_options={"include_usage": True},
        service_tier="auto",
        store=False,
        seed=7,
        prompt_cache_key="k",
        parallel_tool_calls=True,
    )
    assert set(out) == {"model", "messages", "max_tokens"}


def test_invalid_messages_are_rejected() -> None:
    cases: list[tuple[object, str]] = [
        ([], "messages"),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ],
            "messages[0].tool_calls[0].function.arguments",
        ),
    ]
    for messages, param in cases:
        with pytest.raises(RequestRejected) as caught:
            to_messages({"messages": messages}, "m", False)
        assert caught.value.error.param == param


def test_reply_options_read_what_the_client_asked() -> None:
    assert reply_options({}) == ReplyOptions()
    assert reply_options({"reasoning_effort": "low"}).reasoning
    assert not reply_options({"reasoning_effort": "none"}).reasoning
    assert reply_options({"thinking": {"type": "enabled", "budget_tokens": 2000}}).reasoning
    assert not reply_options({"thinking": {"type": "disabled"}}).reasoning
    assert reply_options({"response_format": {"type": "json_object"}}).json_tool


# ---------------------------------------------------------------- response


def message(content: list[object], stop_reason: str = "end_turn", **usage: int) -> JSONObject:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_recorded_nonstream_reply() -> None:
    raw = orjson.loads((FIXTURES / "messages-nonstream.json").read_bytes())
    out = to_chat_completion(raw, ReplyOptions(), created=1700000000)
    completion = ChatCompletion.model_validate(out)  # what an OpenAI SDK client parses
    assert completion.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert completion.model == "claude-sonnet-4-5-20250929"
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Hello! I'm doing well")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        completion.usage.total_tokens,
    ) == (12, 29, 41)


def test_tool_use_reply_has_tool_calls_with_json_arguments() -> None:
    content: list[object] = [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
    ]
    out = ChatCompletion.model_validate(to_chat_completion(message(content, "tool_use"), ReplyOptions(), 1))
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_time", {}),
    ]


def test_tool_only_reply_has_null_content() -> None:
    content: list[object] = [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]
    reply = to_chat_completion(message(content, "tool_use"), ReplyOptions(), 1)
    choices = reply["choices"]
    assert isinstance(choices, list)
    assert choices[0]["message"]["content"] is None


def test_thinking_is_shown_only_when_asked() -> None:
    content: list[object] = [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "xxx"},
        {"type": "text", "text": "42"},
    ]
    asked = to_chat_completion(message(content), ReplyOptions(reasoning=True), 1)
    silent = to_chat_completion(message(content), ReplyOptions(), 1)
    assert isinstance(asked["choices"], list) and isinstance(silent["choices"], list)
    assert asked["choices"][0]["message"] == {
        "role": "assistant",
        "content": "42",
        "reasoning_content": "Let me think.",
    }
    assert silent["choices"][0]["message"] == {"role": "assistant", "content": "42"}


def test_forced_json_tool_reply_is_content() -> None:
    content: list[object] = [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"city": "Paris"}}]
    out = ChatCompletion.model_validate(
        to_chat_completion(message(content, "tool_use"), ReplyOptions(json_tool=True), 1)
    )
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.tool_calls is None
    assert orjson.loads(out.choices[0].message.content or "") == {"city": "Paris"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason: str, finish: str) -> None:
    content: list[object] = [{"type": "text", "text": "x"}]
    choices = to_chat_completion(message(content, stop_reason), ReplyOptions(), 1)["choices"]
    assert isinstance(choices, list) and choices[0]["finish_reason"] == finish


def test_usage_counts_cache_reads_and_writes_into_the_prompt() -> None:
    raw: JSONObject = {
        "input_tokens": 9,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 5752,
        "output_tokens": 5,
    }
    usage = usage_of(raw)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        9 + 100 + 5752,
        5,
        5752,
        100,
    )
    assert openai_usage(raw) == {
        "prompt_tokens": 5861,
        "completion_tokens": 5,
        "total_tokens": 5866,
        "prompt_tokens_details": {"cached_tokens": 5752, "cache_write_tokens": 100},
    }


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "kind", "fault", "openai_type"),
    [
        (400, "invalid_request_error", Fault.CLIENT, "invalid_request_error"),
        (401, "authentication_error", Fault.CLIENT, "authentication_error"),
        (403, "permission_error", Fault.CLIENT, "permission_error"),
        (404, "not_found_error", Fault.CLIENT, "not_found_error"),
        (413, "request_too_large", Fault.CLIENT, "invalid_request_error"),
        (429, "rate_limit_error", Fault.SERVER, "rate_limit_error"),
        (500, "api_error", Fault.SERVER, "upstream_error"),
        (529, "overloaded_error", Fault.SERVER, "upstream_error"),
    ],
)
def test_error_types(status: int, kind: str, fault: Fault, openai_type: str) -> None:
    error = error_of({"type": kind, "message": "m"}, status)
    assert (error.status, error.fault, error.type, error.code, error.message) == (
        status,
        fault,
        openai_type,
        kind,
        "m",
    )
    # inside a stream there is no HTTP status: the type alone decides
    assert error_of({"type": kind, "message": "m"}).fault == fault


def test_prompt_too_long_gets_openai_code() -> None:
    body = orjson.loads((FIXTURES / "error-400-prompt-too-long.json").read_bytes())
    error = error_of(body["error"], 400)
    assert (error.fault, error.code) == (Fault.CLIENT, "context_length_exceeded")
