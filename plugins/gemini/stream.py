"""Gemini ``streamGenerateContent?alt=sse`` -> OpenAI ``chat.completion.chunk`` events.

Each SSE event is a whole ``GenerateContentResponse`` holding the next piece of each candidate; there is
no end marker (the stream ends by EOF) and ``usageMetadata`` is on every event, cumulative
(gemini/stream-generate-content-usage-every-chunk.sse): the last one wins. The client sees a role chunk,
content and tool-call deltas (a call arrives whole, in one part: gemini/stream-generate-content-function-
call.sse), one finish chunk per candidate, the usage chunk if it asked for it, and ``[DONE]`` once every
candidate has finished. From then the answer is ``complete``: what follows is not relayed (a later
``usageMetadata`` still updates the usage the gateway records), and EOF ends it.
"""

from __future__ import annotations

import orjson

from plugins.gemini.errors import error_of
from plugins.gemini.reply import finish_reason, openai_usage, tool_call, usage_of
from proxy.plugin import Fault, JSONObject, StreamReader, UpstreamError
from proxy.upstream.sse import SSEEvent

_DONE = b"data: [DONE]\n\n"


class GeminiStream(StreamReader):
    def __init__(self, include_usage: bool, created: int, model: str, choices: int = 1) -> None:
        super().__init__()
        self.include_usage = include_usage
        self.created = created
        self.model = model
        self.choices = choices
        self.id: object = None
        self._started: set[int] = set()
        self._tools: dict[int, int] = {}  # candidate index -> tool calls sent
        self._finished: set[int] = set()

    def on_event(self, event: SSEEvent) -> bytes | None:
        if event.data is None or self.error is not None:
            return None
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            if not self.complete:  # once the answer is whole, nothing after it can spoil it
                self.error = UpstreamError(502, Fault.SERVER, "Gemini sent a stream event that is not JSON")
            return None
        error = payload.get("error")
        if isinstance(error, dict):
            if not self.complete:
                self.error = error_of(error)
            return None
        if self.id is None:
            self.id = payload.get("responseId")
            version = payload.get("modelVersion")
            self.model = version if isinstance(version, str) and version else self.model
        usage = payload.get("usageMetadata")
        if isinstance(usage, dict):
            self.usage = usage_of(usage)
        if self.complete:
            return None  # after [DONE]: only a later usage figure is kept (for the ledger)
        chunks: list[JSONObject] = []
        candidates = payload.get("candidates")
        for n, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if isinstance(candidate, dict):
                chunks.extend(self._candidate(candidate, n))
        feedback = payload.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
            # The prompt was blocked: no candidate will come; an answer filtered before it began.
            chunks.append(self._chunk(0, {"role": "assistant", "content": ""}))
            chunks.append(self._chunk(0, {}, "content_filter"))
            self._finished = set(range(self.choices))
        out = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks)
        if len(self._finished) >= self.choices:
            self.complete = True
            if self.include_usage and self.usage is not None:
                last: JSONObject = {**self._chunk(0, {}), "choices": [], "usage": openai_usage(self.usage)}
                out += b"data: " + orjson.dumps(last) + b"\n\n"
            out += _DONE
        return out or None

    def _chunk(self, index: int, delta: JSONObject, finish: str | None = None) -> JSONObject:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def _candidate(self, candidate: JSONObject, n: int) -> list[JSONObject]:
        index = candidate.get("index")
        index = index if isinstance(index, int) else n
        out: list[JSONObject] = []
        if index not in self._started:
            self._started.add(index)
            out.append(self._chunk(index, {"role": "assistant", "content": ""}))
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            text = part.get("text")
            if isinstance(text, str) and text:
                self.output_chars += len(text)
                out.append(self._chunk(index, {"content": text}))
            sent = self._tools.get(index, 0)
            call = tool_call(part, sent, self.id)
            if call is not None:
                self._tools[index] = sent + 1
                function = call["function"]
                assert isinstance(function, dict)
                self.output_chars += len(str(function["arguments"]))
                out.append(self._chunk(index, {"tool_calls": [{"index": sent, **call}]}))
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason and index not in self._finished:
            self._finished.add(index)
            out.append(self._chunk(index, {}, finish_reason(reason, index in self._tools)))
        return out
