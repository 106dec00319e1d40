"""OpenAI chat stream -> Anthropic Messages events, for a client of ``/v1/messages`` served through chat.

:class:`MessagesStream` wraps the provider's own chat reader: that reader still decides usage, errors,
completeness and the end (so metering is chat's), and every chunk it lets through is turned into
Anthropic's events:

    message_start
    content_block_start / content_block_delta... / content_block_stop   per block, in order:
        thinking (thinking_delta, from reasoning_content or reasoning), text (text_delta),
        tool_use (input_json_delta, from a tool call's argument fragments)
    message_delta   stop_reason (from finish_reason; ``refusal`` after a refusal) and the usage (input,
                    output, cache read and write)
    message_stop

``message_delta`` goes out once the finish reason and the usage are both in (the usage chunk follows the
finish chunk), or at ``[DONE]`` if the usage never came: a stream cut after the usage has lost nothing the
client needs. Only the first choice is translated (Messages has no ``n``).
"""

from __future__ import annotations

import orjson

from proxy.messages.reply import anthropic_usage, message_id, reasoning_text, stop_reason
from proxy.plugin import JSONObject, StreamReader
from proxy.upstream.sse import SSEEvent


def event(name: bytes, payload: JSONObject) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _chunks(out: bytes, event_: SSEEvent) -> list[bytes]:
    """The data payloads in what the inner reader gave the client: the event's own data when it relayed
    the event as it came (the usual case), else each ``data:`` line of its translation."""
    if out is event_.raw and event_.data is not None:
        return [event_.data]
    found = []
    for line in out.splitlines():
        if line.startswith(b"data:"):
            found.append(line[5:].strip())
    return found


class MessagesStream(StreamReader):
    def __init__(self, inner: StreamReader, model: str) -> None:
        super().__init__()
        self.inner = inner
        self.model = model
        self._started = False
        self._ended = False
        self._next = 0  # the next Anthropic content block index
        self._open: tuple[str, int] | None = None  # (kind, tool index) of the open block
        self._open_index = -1
        self._tools: dict[int, int] = {}  # chat tool-call index -> Anthropic block index
        self._stop: str | None = None
        self._refused = False  # a refusal was streamed (openai/chat-stream-refusal.sse): stop_reason refusal

    def counted_output(self) -> int:
        return self.inner.counted_output()

    def on_event(self, event_: SSEEvent) -> bytes | None:
        inner = self.inner
        out = inner.on_event(event_)
        self.usage, self.error, self.complete = inner.usage, inner.error, inner.complete
        if event_.data is None:
            return out  # a comment (": OPENROUTER PROCESSING"): it keeps the connection alive, as it came
        pieces: list[bytes] = []
        if out and not inner.finished and not self._ended:  # after message_stop nothing may follow
            for data in _chunks(out, event_):
                if data == b"[DONE]":
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(chunk, dict):
                    self._chunk(chunk, pieces)
        if (
            not self._ended
            and self._started
            and (inner.finished or (self._stop is not None and inner.usage is not None))
        ):
            self._end(pieces)
        self.finished = inner.finished
        return b"".join(pieces) or None

    # -- one chat chunk -----------------------------------------------------------------------------
    def _chunk(self, chunk: JSONObject, pieces: list[bytes]) -> None:
        if not self._started:
            self._started = True
            message: JSONObject = {
                "id": message_id(chunk.get("id")),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            pieces.append(event(b"message_start", {"type": "message_start", "message": message}))
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            return
        delta = choice.get("delta")
        if isinstance(delta, dict):
            thinking = reasoning_text(delta)
            if thinking:
                self._delta("thinking", -1, {"type": "thinking_delta", "thinking": thinking}, pieces)
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._delta("text", -1, {"type": "text_delta", "text": text}, pieces)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:  # the model declined: its words are the answer's text
                self._refused = True
                self._delta("text", -1, {"type": "text_delta", "text": refusal}, pieces)
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                if isinstance(call, dict):
                    self._tool_call(call, pieces)
        finish = choice.get("finish_reason")
        if finish and self._stop is None:
            self._stop = "refusal" if self._refused else stop_reason(finish, bool(self._tools))
            self._close(pieces)

    def _tool_call(self, call: JSONObject, pieces: list[bytes]) -> None:
        index = call.get("index")
        index = index if isinstance(index, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        if index not in self._tools:
            self._close(pieces)
            ident = call.get("id") or f"toolu_{index}"
            block = {"type": "tool_use", "id": ident, "name": function.get("name"), "input": {}}
            self._tools[index] = self._open_block(("tool", index), block, pieces)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # Fragments of a call whose block is already closed (a provider interleaving two calls) go to
            # that call's own block index, where a client assembling by index puts them.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            body = {"type": "content_block_delta", "index": self._tools[index], "delta": delta}
            pieces.append(event(b"content_block_delta", body))

    def _delta(self, kind: str, tool: int, delta: JSONObject, pieces: list[bytes]) -> None:
        if self._open != (kind, tool):
            self._close(pieces)
            block: JSONObject = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            self._open_block((kind, tool), block, pieces)
        body = {"type": "content_block_delta", "index": self._open_index, "delta": delta}
        pieces.append(event(b"content_block_delta", body))

    def _open_block(self, key: tuple[str, int], block: JSONObject, pieces: list[bytes]) -> int:
        index = self._next
        self._next += 1
        self._open, self._open_index = key, index
        body = {"type": "content_block_start", "index": index, "content_block": block}
        pieces.append(event(b"content_block_start", body))
        return index

    def _close(self, pieces: list[bytes]) -> None:
        if self._open is not None:
            body = {"type": "content_block_stop", "index": self._open_index}
            pieces.append(event(b"content_block_stop", body))
            self._open = None

    def _end(self, pieces: list[bytes]) -> None:
        self._ended = True
        self._close(pieces)
        delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        usage = anthropic_usage(self.inner.usage)
        pieces.append(event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        pieces.append(event(b"message_stop", {"type": "message_stop"}))
