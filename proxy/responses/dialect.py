"""The Responses API as a dialect of the spine (:mod:`proxy.dataplane.dialect`).

Native targets (a plugin declaring ``Endpoint.RESPONSES``: openai) get the client's body and their bytes go
back unchanged; ``previous_response_id`` goes to them as it is, unless the gateway kept that response
itself (it was served through chat): then every target gets the kept conversation as ``input`` instead.
Chat-only targets get the body translated (:mod:`.request`), and the answer comes back as a Response
(:mod:`.reply`, :mod:`.stream`); the gateway keeps those (:mod:`.kept`) when ``store`` is not false.
"""

from __future__ import annotations

import orjson

from proxy.dataplane.body import ClientBody
from proxy.dataplane.dialect import Dialect
from proxy.errors import InvalidRequest
from proxy.plugin import Endpoint, JSONObject, Reply, StreamReader
from proxy.responses import kept
from proxy.responses.reply import from_chat, new_id, skeleton
from proxy.responses.request import input_items, to_chat
from proxy.responses.stream import ResponsesStream
from proxy.store.base import Store
from proxy.tenancy.keys import VirtualKey

_GATEWAYS = ("id", "status")  # fields of a kept item that the gateway set


class Responses(Dialect):
    endpoint = Endpoint.RESPONSES

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl  # responses.ttl: how long a kept response lives
        self.id = new_id("resp")
        self.body: JSONObject = {}
        self.items: list[JSONObject] = []  # the conversation this response answers
        self.answer: JSONObject | None = None  # the Response, once translated whole
        self.reader: ResponsesStream | None = None
        self.unknown: str | None = None  # a previous_response_id the gateway does not keep for this key

    async def prepare(self, store: Store, key: VirtualKey, body: ClientBody) -> None:
        obj = self.body = body.obj
        previous = obj.get("previous_response_id")
        if previous is not None and not isinstance(previous, str):
            raise InvalidRequest("'previous_response_id' must be a string.", param="previous_response_id")
        own = input_items(obj.get("input"))
        if previous is None:
            self.items = own
            return
        doc = await kept.find(store, previous, key)
        if doc is None:  # perhaps a provider's: a native target continues it; chat cannot
            self.unknown = previous
            self.items = own
            return
        response = doc.get("response")
        earlier = doc.get("input")
        context = [*(earlier if isinstance(earlier, list) else [])]
        if isinstance(response, dict) and isinstance(response.get("output"), list):
            context.extend(response["output"])
        self.items = [*context, *own]
        # Every target gets the conversation itself: a provider never saw the kept response, so the
        # gateway's item ids (and states) mean nothing to it.
        expanded = dict(obj)
        expanded.pop("previous_response_id")
        expanded["input"] = [
            {k: v for k, v in item.items() if k not in _GATEWAYS}
            for item in self.items
            if isinstance(item, dict) and item.get("type") != "reasoning"  # a summary, not a provider's
        ]
        body.obj = expanded
        body.size += len(orjson.dumps(context))  # the reservation measures what is sent

    def to_chat(self, body: JSONObject) -> JSONObject:
        if self.unknown is not None:
            raise kept.PreviousResponseNotFound(
                f"Previous response with id '{self.unknown}' not found.", param="previous_response_id"
            )
        return to_chat(body)

    def reply(self, reply: Reply) -> Reply:
        try:
            completion = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            completion = None
        self.answer = from_chat(skeleton(self.id, self.body), completion, reply.usage)
        return Reply(orjson.dumps(self.answer), reply.usage, output_chars=reply.output_chars)

    def stream(self, reader: StreamReader) -> StreamReader:
        self.reader = ResponsesStream(reader, skeleton(self.id, self.body))
        return self.reader

    async def finish(self, store: Store, key: VirtualKey, translated: bool) -> None:
        if not translated or self.body.get("store") is False:
            return
        answer = self.answer if self.reader is None else self.reader.response
        if answer is not None and answer.get("status") in ("completed", "incomplete"):
            await kept.keep(store, key, answer, self.items, self.ttl)

    def stream_error(self, message: str) -> bytes:
        if self.reader is not None:
            return self.reader.failure(message)
        payload = {"type": "error", "code": "upstream_error", "message": message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
