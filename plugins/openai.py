"""OpenAI itself: the reference wire format, and OpenAI's Responses API served natively.

For ``/v1/responses`` the body goes as the client sent it and the bytes come back unchanged; the usage is
read from the Response object, or in a stream from its terminal event. The stream has no ``[DONE]``: it
ends with ``response.completed``, ``response.incomplete``
(openai/responses-stream-incomplete-max-output-tokens.sse: the usage there is billable) or
``response.failed``, each carrying the whole Response with its ``usage`` (``input_tokens`` including
``input_tokens_details.cached_tokens``, ``output_tokens`` including
``output_tokens_details.reasoning_tokens``). An ``error`` event
(openai/responses-stream-error-event-failed.sse) is the provider's error.
"""

from __future__ import annotations

import orjson

from plugins.openai_compatible import HELD_FOR_COUNTING, OpenAICompatible, error_from_envelope, output_chars
from proxy.plugin import (
    OPENAI_FAMILY,
    Call,
    Endpoint,
    Fault,
    Provider,
    ProviderType,
    Reply,
    StreamReader,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from proxy.upstream.sse import SSEEvent

TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TERMINAL_TYPES = ("response.completed", "response.incomplete", "response.failed")
_DELTA_FIELDS = (b'delta":"',)  # the text, argument and reasoning deltas: the estimate without usage


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def responses_usage(obj: object) -> Usage | None:
    """A Response's ``usage`` object in the gateway's terms (OpenAI's chat meaning)."""
    if not isinstance(obj, dict):
        return None
    input_details = obj.get("input_tokens_details")
    output_details = obj.get("output_tokens_details")
    return Usage(
        prompt_tokens=_int(obj.get("input_tokens")),
        completion_tokens=_int(obj.get("output_tokens")),
        cached_tokens=_int(input_details.get("cached_tokens")) if isinstance(input_details, dict) else 0,
        reasoning_tokens=(
            _int(output_details.get("reasoning_tokens")) if isinstance(output_details, dict) else 0
        ),
    )


def response_error(obj: object, status: int = 502) -> UpstreamError:
    """An ``error`` event (type, code, message, param at the top) or a failed Response's ``error``."""
    if isinstance(obj, dict) and isinstance(obj.get("message"), str):
        wrapped = error_from_envelope(status, {"error": obj}, Fault.SERVER)
        if wrapped is not None:
            return wrapped
    return UpstreamError(status, Fault.SERVER, "the provider reported an error in the stream")


class ResponsesStreamReader(StreamReader):
    """Relays every event unchanged; reads only the terminal events and ``error`` (by their ``event:``
    line, or, without one, by the type named in the data). The deltas' output is counted only if the
    usage never comes (the events are kept, not copied, up to HELD_FOR_COUNTING bytes, then counted in
    batches), as the chat reader does."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[bytes] = []
        self._held_bytes = 0

    def on_event(self, event: SSEEvent) -> bytes | None:
        data = event.data
        if data is None:
            return event.raw
        name = event.event
        if name is None:  # no ``event:`` line: the type is in the data
            if b'"error"' in data:
                name = "error"
            else:
                name = next((t for t in _TERMINAL_TYPES if b'"%s"' % t.encode() in data), None)
        if name not in TERMINAL and name != "error":
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes > HELD_FOR_COUNTING:
                self.counted_output()
            return event.raw
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            return event.raw
        kind = obj.get("type")
        if kind == "error" or (kind is None and isinstance(obj.get("error"), dict)):
            # The fields at the top (OpenAI's documented shape) or under "error" (the recorded one).
            nested = obj.get("error")
            self.error = response_error(nested if isinstance(nested, dict) else obj)
            return None
        response = obj.get("response")
        if not isinstance(response, dict) or kind not in TERMINAL:
            return event.raw
        usage = responses_usage(response.get("usage"))
        if usage is not None:
            self.usage = usage
            self._held.clear()  # the provider's figures: no estimate will be needed
        self.complete = self.finished = True
        if kind == "response.failed" and self.error is None:
            self.error = response_error(response.get("error"))
            return None
        return event.raw

    def counted_output(self) -> int:
        if self._held:
            self.output_chars += sum(output_chars(data, _DELTA_FIELDS) for data in self._held)
            self._held.clear()
            self._held_bytes = 0
        return self.output_chars


class OpenAI(OpenAICompatible):
    """OpenAI itself: the reference wire format (nothing to declare beyond where it lives), and the
    Responses API natively."""

    plugin_name = "openai"
    requires_key = True
    provider_type = ProviderType.DIRECT
    default_base_url = "https://api.openai.com/v1"
    endpoints = Provider.endpoints | OPENAI_FAMILY | {Endpoint.RESPONSES}  # no /v1/rerank: OpenAI has none

    def build_request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is not Endpoint.RESPONSES:
            return super().build_request(call)
        body = dict(call.body)  # the Responses stream always ends with its usage: nothing to ask for
        body["model"] = call.model
        headers = self.auth_headers(call.api_key)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "text/event-stream" if call.stream else "application/json"
        return UpstreamRequest(f"{self.base_url}/responses", headers, orjson.dumps(body))

    def read_reply(self, call: Call, body: bytes) -> Reply | UpstreamError:
        if call.endpoint is not Endpoint.RESPONSES:
            return super().read_reply(call, body)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            what = f"provider {self.name!r} answered with a body that is not a Response"
            return UpstreamError(502, Fault.SERVER, what)
        usage = responses_usage(obj.get("usage"))
        return Reply(body, usage, output_chars=0 if usage is not None else output_chars(body))

    def open_stream(self, call: Call) -> StreamReader:
        if call.endpoint is not Endpoint.RESPONSES:
            return super().open_stream(call)
        return ResponsesStreamReader()


Plugin = OpenAI
