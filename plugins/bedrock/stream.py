"""Bedrock ConverseStream (binary event stream) -> OpenAI ``chat.completion.chunk`` SSE events: the
plugin's :class:`~proxy.plugin.StreamDecoder`. What it gives is read like any OpenAI chat stream (the
plugin's reader is the shared one), so usage, the end and the client's usage chunk are decided there.

The message order (bedrock/converse-stream-text.eventstream): ``messageStart``, per content block
``contentBlockStart`` (tool use only) / ``contentBlockDelta``... / ``contentBlockStop``, ``messageStop``
(the stop reason), then ``metadata`` (usage and metrics) *after* ``messageStop``: stopping at
``messageStop`` would lose the usage. A tool call's arguments may come whole in one delta
(bedrock/converse-stream-tool-use.eventstream). The client sees a role chunk, content / tool call /
reasoning deltas, the finish chunk, the usage chunk (dropped by the reader if the client did not ask for
it), and ``[DONE]`` at ``metadata``.

An ``exception`` message (``:exception-type: throttlingException``...) becomes the decoder's ``error``
(throttling and 5xx kinds are server faults: before any content, dispatch falls back); a corrupt or
oversized frame too (:mod:`plugins.bedrock.eventstream`).
"""

from __future__ import annotations

import orjson

from plugins.bedrock.errors import stream_error_of
from plugins.bedrock.eventstream import EventStreamDecoder, FrameError, Message
from plugins.bedrock.reply import finish_reason, openai_usage, usage_of
from proxy.plugin import Fault, JSONObject, StreamDecoder, UpstreamError

_DONE = b"data: [DONE]\n\n"


class BedrockDecoder(StreamDecoder):
    def __init__(self, model: str, response_id: str, created: int) -> None:
        super().__init__()
        self.model = model
        self.id = response_id
        self.created = created
        self.frames = EventStreamDecoder(self.max_frame_bytes)
        self._tools: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._stopped = False
        self.finished = False  # metadata came: the stream's last message

    def feed(self, chunk: bytes) -> bytes:
        if self.finished or self.error is not None:
            return b""
        self.frames.max_frame_bytes = self.max_frame_bytes
        try:
            messages = self.frames.feed(chunk)
        except FrameError as exc:
            messages = exc.messages  # relayed, then the stream ends
            self.error = UpstreamError(502, Fault.SERVER, f"Bedrock's stream ended: {exc}")
        out: list[bytes] = []
        error, self.error = self.error, None  # a frame fault comes after the messages before it
        for message in messages:
            for piece in self._message(message):
                out.append(b"data: " + orjson.dumps(piece) + b"\n\n")
            if self.error is not None:
                break
            if self.finished:
                out.append(_DONE)
                break
        self.error = self.error or error
        return b"".join(out)

    def close(self) -> bool:
        return self.frames.pending

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
            raw = payload.get("usage")
            self.finished = self._stopped
            if not isinstance(raw, dict):
                return []  # no figures: the gateway estimates, as for any stream without usage
            return [{**self._chunk({}), "choices": [], "usage": openai_usage(usage_of(raw))}]
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
            return [self._chunk({"content": text})] if text else []
        use = delta.get("toolUse")
        fragment = use.get("input") if isinstance(use, dict) else None
        if isinstance(fragment, str) and fragment and isinstance(index, int) and index in self._tools:
            call = {"index": self._tools[index], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = delta.get("reasoningContent")
        thought = reasoning.get("text") if isinstance(reasoning, dict) else None
        if isinstance(thought, str) and thought:
            return [self._chunk({"reasoning_content": thought})]
        return []


def _message_of(payload: bytes) -> object:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj.get("message") if isinstance(obj, dict) else None
