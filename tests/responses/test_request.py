"""A Responses API request -> a chat request: what translates, and what is refused naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.errors import InvalidRequest
from proxy.responses.request import to_chat


def chat(**body: Any) -> dict[str, Any]:
    return to_chat({"model": "m", **body})


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    assert chat(input="hi", instructions="Be brief.") == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    }


def test_messages_with_parts_images_and_roles() -> None:
    body = chat(
        input=[
            {"role": "developer", "content": "Rules."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "A cat.", "annotations": []}]},
        ]
    )
    assert body["messages"] == [
        {"role": "system", "content": "Rules."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": "A cat."},
    ]


def test_function_calls_join_one_assistant_message_and_outputs_are_tool_messages() -> None:
    body = chat(
        input=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "rain"}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ]
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}},
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": '{"city":"Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_tools_choice_format_and_sampling() -> None:
    schema = {"type": "object", "properties": {}}
    body = chat(
        input="x",
        tools=[{"type": "function", "name": "f", "parameters": schema, "strict": True}],
        tool_choice={"type": "function", "name": "f"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
        max_output_tokens=64,
        reasoning={"effort": "high", "summary": "auto"},
        temperature=0.5,
        top_p=0.9,
        store=True,
        include=["reasoning.encrypted_content"],
        truncation="disabled",
        metadata={"a": "b"},
        stream=True,
    )
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert (body["max_tokens"], body["reasoning_effort"], body["temperature"], body["top_p"]) == (
        64,
        "high",
        0.5,
        0.9,
    )
    assert body["parallel_tool_calls"] is False and body["stream"] is True
    assert not {"store", "include", "truncation", "metadata", "text", "reasoning"} & set(body)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]}, "tools[1].type"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"input": 5}, "input"),
        ({"input": []}, "input"),
    ],
)
def test_what_chat_cannot_express_is_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    body: dict[str, Any] = {"input": "x", **fields}
    with pytest.raises(InvalidRequest) as raised:
        chat(**body)
    assert raised.value.param == param and raised.value.status == 400
