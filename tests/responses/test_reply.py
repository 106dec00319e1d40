"""A chat completion -> a Response object: items in order, status, usage in the Responses API's names."""

from __future__ import annotations

from proxy.plugin import Usage
from proxy.responses.reply import from_chat, skeleton


def test_reasoning_text_and_tool_calls_become_items_in_order() -> None:
    completion = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "reasoning_content": "Think first.",
                    "content": "Let me look.",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                    ],
                },
            }
        ]
    }
    usage = Usage(prompt_tokens=20, completion_tokens=9, cached_tokens=5, reasoning_tokens=3)
    body = {"model": "alias", "instructions": "Be brief.", "temperature": 0.3, "store": False}
    response = from_chat(skeleton("resp_1", body), completion, usage)
    assert [i["type"] for i in response["output"]] == ["reasoning", "message", "function_call"]
    reasoning, message, call = response["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Think first."}]
    assert message["content"][0]["text"] == "Let me look." and message["status"] == "completed"
    assert (call["call_id"], call["name"], call["arguments"]) == ("c1", "f", '{"a":1}')
    assert response["status"] == "completed" and response["incomplete_details"] is None
    assert response["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 5},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 29,
    }
    assert (response["id"], response["model"], response["instructions"]) == ("resp_1", "alias", "Be brief.")
    assert response["temperature"] == 0.3 and response["store"] is False


def test_a_length_stop_is_incomplete() -> None:
    completion = {"choices": [{"finish_reason": "length", "message": {"content": "Alabama, Alaska"}}]}
    response = from_chat(skeleton("resp_2", {"model": "m"}), completion, None)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete" and response["usage"] is None
