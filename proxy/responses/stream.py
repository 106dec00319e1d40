"""A chat stream -> the Responses API's typed events, as a :class:`StreamReader` around the plugin's own.

The plugin's reader sees every upstream event first (it keeps the usage, the errors and the end, so
metering and the relay's judgement are the same as for chat); the chat chunks it passes on are turned
into, in order:

    response.created, response.in_progress                    (with the first event)
    response.output_item.added (reasoning), response.reasoning_summary_text.delta...   (reasoning text)
    response.output_item.added (message), response.content_part.added, response.output_text.delta...
    response.output_item.added (function_call), response.function_call_arguments.delta...
    ...done events for each item: output_text.done, content_part.done, function_call_arguments.done,
    response.output_item.done
    response.completed (or response.incomplete), with the whole Response and its usage

each as ``event: <type>`` + ``data: {...}`` with a ``sequence_number``. The end is sent once the chat
answer is whole (finish and usage in) or its end marker came, whichever is first. A stream that breaks
ends with :meth:`ResponsesStream.failure`: ``error`` then ``response.failed``.
"""

from __future__ import annotations

import orjson

from proxy.plugin import JSONObject, StreamReader
from proxy.responses.reply import finish, function_call_item, message_item, new_id, reasoning_item
from proxy.upstream.sse import SSEEvent, SSEParser


class _Call:
    __slots__ = ("arguments", "call_id", "item_id", "name", "output_index")

    def __init__(self, item_id: str, call_id: str, name: str, output_index: int) -> None:
        self.item_id, self.call_id, self.name, self.output_index = item_id, call_id, name, output_index
        self.arguments: list[str] = []


class ResponsesStream(StreamReader):
    def __init__(self, inner: StreamReader, response: JSONObject) -> None:
        super().__init__()
        self.inner = inner
        self.response = response  # the skeleton; completed in place when the stream ends
        self.parser = SSEParser()  # the chat events the inner reader gives (it read bounded events)
        self.sequence = 0
        self.started = self.ended = False
        self.output: list[JSONObject | None] = []  # by output index; None while the item is open
        self.text: list[str] | None = None  # the open message's text (or refusal)
        self.part = "output_text"  # the open message's part: output_text or refusal
        self.thought: list[str] | None = None  # the open reasoning item's text
        self.thought_id = ""
        self.thought_index = 0
        self.message_id = ""
        self.message_index = 0
        self.calls: dict[int, _Call] = {}  # chat tool call index -> its function_call item
        self.finish_reason: object = None

    def on_event(self, event: SSEEvent) -> bytes | None:
        inner = self.inner
        piece = inner.on_event(event)
        self.usage, self.error = inner.usage, inner.error
        self.complete, self.finished = inner.complete, inner.finished
        if self.error is not None or self.ended:
            return None
        out: list[bytes] = []
        if not self.started and event.data is not None:
            self.started = True
            out.append(self._event("response.created", {"response": dict(self.response)}))
            out.append(self._event("response.in_progress", {"response": dict(self.response)}))
        if piece:
            # Relayed as it came (the usual case): the event is parsed already; else the reader's own
            # bytes (a translating plugin's) are parsed here.
            chat_events = [event] if piece is event.raw else self.parser.feed(piece)
            for chat_event in chat_events:
                data = chat_event.data
                if data is None or data == b"[DONE]":
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(chunk, dict):
                    self._chunk(chunk, out)
        if self.started and (inner.complete or inner.finished):
            self._end(out)
        return b"".join(out) or None

    def counted_output(self) -> int:
        return self.inner.counted_output()

    def failure(self, message: str) -> bytes:
        """The end of a broken stream: an ``error`` event, then ``response.failed``."""
        error = {"code": "upstream_error", "message": message}
        failed = dict(self.response, status="failed", error=error, output=[o for o in self.output if o])
        return self._event("error", {"code": "upstream_error", "message": message, "param": None}) + (
            self._event("response.failed", {"response": failed})
        )

    # -- chat chunks -> events ----------------------------------------------------------------------

    def _event(self, kind: str, fields: JSONObject) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _chunk(self, chunk: JSONObject, out: list[bytes]) -> None:
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # a Response has one answer
            delta = choice.get("delta")
            if isinstance(delta, dict):
                thought = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(thought, str) and thought:
                    self._thought(thought, out)
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self._text(content, out)
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    self._text(refusal, out, "refusal")
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else []:
                    if isinstance(call, dict):
                        self._call(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _thought(self, text: str, out: list[bytes]) -> None:
        """Reasoning text (``reasoning_content``: DeepSeek's, the anthropic plugin's thinking) as a
        ``reasoning`` item with one summary part."""
        if self.thought is None:
            self.thought = []
            self.thought_id, self.thought_index = new_id("rs"), len(self.output)
            self.output.append(None)
            item: JSONObject = {"id": self.thought_id, "type": "reasoning", "summary": []}
            out.append(self._item("added", self.thought_index, item))
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._event("response.reasoning_summary_part.added", {**self._summary(), "part": part})
            )
        self.thought.append(text)
        out.append(self._event("response.reasoning_summary_text.delta", {**self._summary(), "delta": text}))

    def _summary(self) -> JSONObject:
        return {"item_id": self.thought_id, "output_index": self.thought_index, "summary_index": 0}

    def _close_thought(self, out: list[bytes]) -> None:
        if self.thought is None:
            return
        text = "".join(self.thought)
        self.thought = None
        out.append(self._event("response.reasoning_summary_text.done", {**self._summary(), "text": text}))
        part: JSONObject = {"type": "summary_text", "text": text}
        out.append(self._event("response.reasoning_summary_part.done", {**self._summary(), "part": part}))
        item = reasoning_item(self.thought_id, text)
        self.output[self.thought_index] = item
        out.append(self._item("done", self.thought_index, item))

    def _text(self, content: str, out: list[bytes], kind: str = "output_text") -> None:
        """A text (or refusal) delta. The message's one part is of the kind its first delta had; a
        refusal's part is a ``refusal`` with ``response.refusal.*`` events."""
        self._close_thought(out)
        if self.text is None:
            self.text, self.part = [], kind
            self.message_id, self.message_index = new_id("msg"), len(self.output)
            self.output.append(None)
            item = message_item(self.message_id, None, None, "in_progress")
            out.append(self._item("added", self.message_index, item))
            empty: JSONObject = (
                {"type": "refusal", "refusal": ""}
                if kind == "refusal"
                else {"type": "output_text", "text": "", "annotations": []}
            )
            out.append(self._event("response.content_part.added", self._part(empty)))
        self.text.append(content)
        if self.part == "refusal":
            out.append(self._event("response.refusal.delta", {**self._where(), "delta": content}))
        else:
            fields = {**self._where(), "delta": content, "logprobs": []}
            out.append(self._event("response.output_text.delta", fields))

    def _item(self, stage: str, index: int, item: JSONObject) -> bytes:
        return self._event(f"response.output_item.{stage}", {"output_index": index, "item": item})

    def _where(self) -> JSONObject:
        return {"item_id": self.message_id, "output_index": self.message_index, "content_index": 0}

    def _part(self, part: JSONObject) -> JSONObject:
        return {**self._where(), "part": part}

    def _call(self, call: JSONObject, out: list[bytes]) -> None:
        index = call.get("index", 0)
        index = index if isinstance(index, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        entry = self.calls.get(index)
        if entry is None:
            self._close_thought(out)
            self._close_message(out)
            call_id = call.get("id")
            entry = _Call(
                new_id("fc"),
                call_id if isinstance(call_id, str) and call_id else new_id("call"),
                str(function.get("name") or ""),
                len(self.output),
            )
            self.calls[index] = entry
            self.output.append(None)
            item = function_call_item(entry.item_id, entry.call_id, entry.name, "", "in_progress")
            out.append(self._item("added", entry.output_index, item))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            entry.arguments.append(arguments)
            fields = {"item_id": entry.item_id, "output_index": entry.output_index, "delta": arguments}
            out.append(self._event("response.function_call_arguments.delta", fields))

    def _close_message(self, out: list[bytes]) -> None:
        if self.text is None:
            return
        text, status = "".join(self.text), self._status()
        self.text = None
        if self.part == "refusal":
            out.append(self._event("response.refusal.done", {**self._where(), "refusal": text}))
            part: JSONObject = {"type": "refusal", "refusal": text}
            item = message_item(self.message_id, None, text, status)
        else:
            out.append(
                self._event("response.output_text.done", {**self._where(), "text": text, "logprobs": []})
            )
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item = message_item(self.message_id, text, None, status)
        out.append(self._event("response.content_part.done", self._part(part)))
        self.output[self.message_index] = item
        out.append(self._item("done", self.message_index, item))

    def _status(self) -> str:
        return "incomplete" if self.finish_reason in ("length", "content_filter") else "completed"

    def _end(self, out: list[bytes]) -> None:
        self.ended = True
        self._close_thought(out)
        self._close_message(out)
        for entry in self.calls.values():
            arguments = "".join(entry.arguments)
            fields = {"item_id": entry.item_id, "output_index": entry.output_index, "arguments": arguments}
            out.append(self._event("response.function_call_arguments.done", fields))
            item = function_call_item(entry.item_id, entry.call_id, entry.name, arguments, "completed")
            self.output[entry.output_index] = item
            out.append(self._item("done", entry.output_index, item))
        finish(self.response, [o for o in self.output if o], self.finish_reason, self.inner.usage)
        kind = "response.incomplete" if self.response["status"] == "incomplete" else "response.completed"
        out.append(self._event(kind, {"response": self.response}))
