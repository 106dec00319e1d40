"""Dialects: a client's wire format when it is not Chat Completions (the Responses API, Anthropic's
Messages), served by the same spine as chat.

The handler of such an endpoint makes one :class:`Dialect` per request and passes it to
:func:`proxy.dataplane.spine.serve`. Per candidate the spine then decides how the call goes:

- **native**: the provider declares the client's endpoint (``dialect.endpoint in provider.endpoints``): the
  plugin gets the client's body on that endpoint and its bytes are relayed unchanged;
- **translated**: the provider serves chat only: the plugin gets ``dialect.to_chat(body)`` on the chat
  endpoint, a JSON answer comes back through :meth:`Dialect.reply` and a stream through the reader
  :meth:`Dialect.stream` wraps around the plugin's own (usage, errors and the end are the inner reader's,
  so metering is the same as chat's).

The ledger's ``endpoint`` is the client's endpoint either way. Errors on the endpoint (401, 429, a
provider's refusal...) take the dialect's envelope: the edge asks :meth:`Dialect.error_response` for any
request that carries one (``request[DIALECT]``; OpenAI's envelope by default), and the relay ends a
broken stream with :meth:`Dialect.stream_error`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

from aiohttp import web

from proxy.dataplane.body import ClientBody
from proxy.errors import GatewayError
from proxy.plugin import Endpoint, JSONObject, Reply, StreamReader
from proxy.store.base import Store
from proxy.tenancy.keys import VirtualKey


class Dialect(abc.ABC):
    """One request's translation between the client's wire format and chat (a dialect keeps per-request
    state: what it read from the body, the answer it built)."""

    endpoint: ClassVar[Endpoint]  # the client's endpoint: native on providers that declare it

    async def prepare(self, store: Store, key: VirtualKey, body: ClientBody) -> None:
        """Before resolution: complete the body from stored state (a previous answer) or refuse it
        (raise a :class:`~proxy.errors.GatewayError`). The default has nothing to do."""
        return

    @abc.abstractmethod
    def to_chat(self, body: JSONObject) -> JSONObject:
        """The chat request for the client's body. Raises :class:`~proxy.errors.InvalidRequest`, naming
        the field, for what chat cannot express (those candidates are then skipped; with none left, the
        client gets the error)."""

    @abc.abstractmethod
    def reply(self, reply: Reply) -> Reply:
        """A chat answer (the plugin's ``Reply``) as the client's answer; usage kept."""

    @abc.abstractmethod
    def stream(self, reader: StreamReader) -> StreamReader:
        """A reader that feeds ``reader`` (the plugin's chat reader) and gives the client its own events."""

    async def finish(self, store: Store, key: VirtualKey, translated: bool) -> None:
        """After the answer went out whole (``translated``: it came back through this dialect): keep
        what later requests may refer to. The default keeps nothing."""
        return

    def error_response(self, error: GatewayError) -> web.Response:
        """The endpoint's error envelope for ``error``; OpenAI's by default."""
        return error.response()

    def forwarded_headers(self) -> Mapping[str, str]:
        """Client headers a native call passes on to the provider (``Call.headers``); none by default."""
        return {}

    @abc.abstractmethod
    def stream_error(self, message: str) -> bytes:
        """The event that ends a stream broken after it started (the provider failed or stalled)."""


DIALECT = web.RequestKey("dialect", Dialect)  # set by serve on requests that have one; read by the edge
