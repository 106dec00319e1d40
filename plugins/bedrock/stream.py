"""Bedrock ConverseStream (binary event stream) -> OpenAI ``chat.completion.chunk`` SSE events.

The message order (bedrock/converse-stream-text.eventstream): ``messageStart``, per content block
``contentBlockStart`` (tool use only) / ``contentBlockDelta``... / ``contentBlockStop``, ``messageStop``
(the stop reason), then ``metadata`` (usage and metrics) *after* ``messageStop``: stopping at
``messageStop`` would lose the usage. A tool call's arguments may come whole in one delta
(bedrock/converse-stream-tool-use.eventstream). The client sees a role chunk, content / tool call /
reasoning deltas, the finish chunk, the usage chunk if it asked for it, and ``[DONE]`` at ``metadata``.

An ``exception`` message (``:exception-type: throttlingException``...) becomes the reader's ``error``
(throttling and 5xx kinds are server faults: before any content, dispatch falls back); a corrupt or
oversized frame too (:mod:`plugins.bedrock.eventstream`).
"""

from __future__ import annotations

import orjson

from plugins.bedrock.errors import stream_error_of
from plugins.bedrock.eventstream import EventStreamDecoder, FrameError, Message
from plugins.bedrock.reply import finish_reason, openai_usage, usage_of
from proxy.plugin import Fault, FramedStreamReader, JSONObject, UpstreamError

_DONE = b"data: [DONE]\n\n"


class BedrockStream(FramedStreamReader):
    def __init__(self, include_usage: bool, model: str, response_id: str, created: int) -> None:
        super().__init__()
        self.include_usage = include_usage
        self.model = model
        self.id = response_id
        self.created = created
        self.decoder = EventStreamDecoder(self.max_frame_bytes)
        self._tools: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._stopped = False

    def on_bytes(self, chunk: bytes) -> bytes:
        if self.finished or self.error is not None:
            return b""
        self.decoder.max_frame_bytes = self.max_frame_bytes
        try:
            messages = self.decoder.feed(chunk)
        except FrameError as exc:
            messages = []
            self.error = UpstreamError(502, Fault.SERVER, f"Bedrock's stream is corrupt: {exc}")
        out: list[bytes] = []
        for message in messages:
            for piece in self._message(message):
                out.append(b"data: " + orjson.dumps(piece) + b"\n\n")
                self.events += 1
            if self.error is not None:
                break
            if self.finished:
                out.append(_DONE)
                break
        return b"".join(out)

    def on_end(self) -> bool:
        return self.decoder.pending

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> JSONObject:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def _message(self, message: Message) -> list[JSONObject]:
        kind = message.header(":message-type")
        if kind == "exception":
            self.error = stream_error_of(
                message.header(":exception-type") or "", _message_of(message.payload)
            )
            return []
        if kind == "error":
            code = message.header(":error-code") or "error"
            self.error = stream_error_of(code, message.header(":error-message"))
            return []
        try:
            payload = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            self.error = UpstreamError(502, Fault.SERVER, "Bedrock sent an event that is not a JSON object")
            return []
        event = message.header(":event-type")
        if event == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "contentBlockStart":
            return self._block_start(payload)
        if event == "contentBlockDelta":
            return self._block_delta(payload)
        if event == "messageStop":
            self._stopped = True
            return [self._chunk({}, finish_reason(payload.get("stopReason")))]
        if event == "metadata":
            usage = payload.get("usage")
            if isinstance(usage, dict):
                self.usage = usage_of(usage)
            self.complete = self.finished = self._stopped
            if self.include_usage and self.usage is not None:
                return [{**self._chunk({}), "choices": [], "usage": openai_usage(self.usage)}]
        return []  # contentBlockStop, and event types added later

    def _block_start(self, payload: JSONObject) -> list[JSONObject]:
        index, start = payload.get("contentBlockIndex"), payload.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(index, int) or not isinstance(use, dict):
            return []
        tool_index = self._tools[index] = len(self._tools)
        call = {
            "index": tool_index,
            "id": use.get("toolUseId"),
            "type": "function",
            "function": {"name": use.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: JSONObject) -> list[JSONObject]:
        index, delta = payload.get("contentBlockIndex"), payload.get("delta")
        if not isinstance(delta, dict):
            return []
        text = delta.get("text")
        if isinstance(text, str):
            self.output_chars += len(text)
            return [self._chunk({"content": text})] if text else []
        use = delta.get("toolUse")
        fragment = use.get("input") if isinstance(use, dict) else None
        if isinstance(fragment, str) and fragment and isinstance(index, int) and index in self._tools:
            self.output_chars += len(fragment)
            call = {"index": self._tools[index], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = delta.get("reasoningContent")
        thought = reasoning.get("text") if isinstance(reasoning, dict) else None
        if isinstance(thought, str) and thought:
            self.output_chars += len(thought)
            return [self._chunk({"reasoning_content": thought})]
        return []


def _message_of(payload: bytes) -> object:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj.get("message") if isinstance(obj, dict) else None
