"""``POST /v1/messages``: Anthropic's Messages API on the chat spine.

:class:`MessagesDialect` is the endpoint's :class:`~proxy.dataplane.dialect.Dialect`: a provider that
declares ``Endpoint.MESSAGES`` (the ``anthropic`` plugin) gets the client's body and its
``anthropic-version``/``anthropic-beta`` headers, and its bytes go back unchanged; any other gets the chat
request from :func:`~proxy.messages.request.to_chat`, and its answer comes back as a message
(:func:`~proxy.messages.reply.to_message`) or as Anthropic's events
(:class:`~proxy.messages.stream.MessagesStream`). Errors take Anthropic's envelope
(:mod:`proxy.messages.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from proxy.dataplane.body import ClientBody
from proxy.dataplane.dialect import Dialect
from proxy.dataplane.spine import serve
from proxy.errors import GatewayError
from proxy.messages import errors
from proxy.messages.reply import to_message
from proxy.messages.request import to_chat
from proxy.messages.stream import MessagesStream
from proxy.plugin import Endpoint, JSONObject, Reply, StreamReader
from proxy.store.base import Store
from proxy.tenancy.keys import VirtualKey

# The client headers an Anthropic target gets: the API version and the beta features the client opted into.
FORWARDED = ("anthropic-version", "anthropic-beta")


class MessagesDialect(Dialect):
    endpoint = Endpoint.MESSAGES

    def __init__(self, request: web.Request) -> None:
        self.headers = {name: value for name in FORWARDED if (value := request.headers.get(name))}
        self.model = ""  # the client's model name: what a translated answer says it came from

    async def prepare(self, store: Store, key: VirtualKey, body: ClientBody) -> None:
        self.model = body.model

    def to_chat(self, body: JSONObject) -> JSONObject:
        return to_chat(body)

    def reply(self, reply: Reply) -> Reply:
        try:
            completion = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            completion = None
        message = to_message(completion, self.model, reply.usage)
        return Reply(orjson.dumps(message), reply.usage, "application/json", reply.output_chars)

    def stream(self, reader: StreamReader) -> StreamReader:
        return MessagesStream(reader, self.model)

    def forwarded_headers(self) -> Mapping[str, str]:
        return self.headers

    def error_response(self, error: GatewayError) -> web.Response:
        return errors.error_response(error)

    def stream_error(self, message: str) -> bytes:
        return errors.stream_error(message)


async def messages(request: web.Request) -> web.StreamResponse:
    return await serve(request, Endpoint.MESSAGES, MessagesDialect(request))
