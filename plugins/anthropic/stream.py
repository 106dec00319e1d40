"""Anthropic Messages stream events -> OpenAI ``chat.completion.chunk`` payloads. Pure: no network.

The event order (``anthropic/messages-stream-text.sse``): ``message_start``, then per content block
``content_block_start``/``content_block_delta``.../``content_block_stop``, ``message_delta`` (stop reason and
usage), ``message_stop``; ``ping`` anywhere. The client sees: a role chunk, content / tool call / reasoning
deltas, one finish chunk, the usage chunk (``choices: []``) if it asked for it, and ``[DONE]`` (sent by the
caller once :attr:`StreamTranslator.finished` turns true).
"""

from __future__ import annotations

import orjson

from plugins.anthropic.errors import error_of
from plugins.anthropic.reply import (
    FINISH_REASONS,
    JSON_TOOL,
    ReplyOptions,
    openai_usage,
    usage_of,
)
from proxy.plugin import JSONObject, UpstreamError, Usage


class StreamTranslator:
    """Feed it each event's decoded JSON in order; it returns the OpenAI chunks the event yields.

    Usage: ``message_start.message.usage``, then the keys present in ``message_delta.usage`` override it.
    The delta counts are cumulative (``output_tokens`` 2 at start, 5 at the end in
    ``anthropic/messages-stream-text.sse``), so they replace, never add; a ``message_delta`` may even revise
    ``input_tokens`` (``anthropic/messages-stream-delta-input-tokens.sse``).
    """

    def __init__(self, options: ReplyOptions, include_usage: bool, created: int) -> None:
        self.options = options
        self.include_usage = include_usage
        self.created = created
        self.id: object = None
        self.model: object = None
        self.raw_usage: JSONObject = {}
        self.error: UpstreamError | None = None
        self.finished = False
        self._blocks: dict[int, tuple[str, int]] = {}  # Anthropic block index -> (kind, OpenAI tool index)
        self._tools = 0
        self._finish_sent = False
        self.output_chars = 0  # text, thinking and tool input characters (the estimate without usage)

    @property
    def usage(self) -> Usage | None:
        return usage_of(self.raw_usage) if self.raw_usage else None

    def translate(self, event: JSONObject) -> list[JSONObject]:
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event)
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            self.finished = True
        elif kind == "error":
            error = event.get("error")
            self.error = error_of(error if isinstance(error, dict) else {})
        # ping, content_block_stop and event types added later carry nothing for an OpenAI client
        return []

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> JSONObject:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def _start(self, event: JSONObject) -> list[JSONObject]:
        message = event.get("message")
        if isinstance(message, dict):
            self.id = message.get("id")
            self.model = message.get("model")
            usage = message.get("usage")
            if isinstance(usage, dict):
                self.raw_usage = dict(usage)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: JSONObject) -> list[JSONObject]:
        index, block = event.get("index"), event.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "tool_use" and self.options.json_tool and block.get("name") == JSON_TOOL:
            self._blocks[index] = ("json", -1)
            return []
        if kind == "tool_use":
            tool_index = self._tools
            self._tools += 1  # OpenAI numbers tool calls 0, 1, 2...; text blocks do not count
            self._blocks[index] = ("tool", tool_index)
            # Anthropic starts with input {} and streams the JSON as partial_json fragments; a non-empty
            # start input (some compatible upstreams send it whole) is the arguments themselves.
            start_input = block.get("input")
            arguments = orjson.dumps(start_input).decode() if start_input else ""
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            }
            return [self._chunk({"tool_calls": [call]})]
        self._blocks[index] = (str(kind), -1)
        text = block.get("text") if kind == "text" else block.get("thinking") if kind == "thinking" else None
        if isinstance(text, str) and text:  # normally empty at start; deltas carry the text
            return self._text(str(kind), text)
        return []

    def _text(self, kind: str, text: str) -> list[JSONObject]:
        if kind in ("text", "json"):
            return [self._chunk({"content": text})]
        if kind == "thinking" and self.options.reasoning:
            return [self._chunk({"reasoning_content": text})]
        return []

    def _block_delta(self, event: JSONObject) -> list[JSONObject]:
        index, delta = event.get("index"), event.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            return []
        kind, tool_index = self._blocks.get(index, ("text", -1))
        dtype = delta.get("type")
        if dtype == "text_delta" and isinstance(delta.get("text"), str):
            self.output_chars += len(delta["text"])
            return self._text("text", str(delta["text"]))
        if dtype == "thinking_delta" and isinstance(delta.get("thinking"), str):
            self.output_chars += len(delta["thinking"])
            return self._text("thinking", str(delta["thinking"]))
        fragment = delta.get("partial_json")
        if isinstance(fragment, str):
            self.output_chars += len(fragment)
        # The first fragment is often "" (anthropic/messages-stream-tool-use.sse): nothing to send.
        if dtype != "input_json_delta" or not isinstance(fragment, str) or not fragment:
            return []  # signature_delta, citations_delta: no OpenAI form
        if kind == "json":
            return self._text("json", fragment)
        call = {"index": tool_index, "function": {"arguments": fragment}}
        return [self._chunk({"tool_calls": [call]})]

    def _message_delta(self, event: JSONObject) -> list[JSONObject]:
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.raw_usage.update({k: v for k, v in usage.items() if v is not None})
        delta = event.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if self._finish_sent or not isinstance(reason, str):
            return []
        self._finish_sent = True
        finish = FINISH_REASONS.get(reason, "stop")
        if finish == "tool_calls" and self.options.json_tool and self._tools == 0:
            finish = "stop"  # the forced JSON tool was the answer
        chunks = [self._chunk({}, finish)]
        # The usage chunk goes out here, not at message_stop: the last event of a stream can be lost
        # (anthropic/messages-stream-no-trailing-blank-line.sse ends without the blank line that would
        # dispatch message_stop), and message_delta already holds the final counts.
        if self.include_usage:
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = openai_usage(self.raw_usage)
            chunks.append(chunk)
        return chunks
