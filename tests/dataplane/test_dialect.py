"""The dialect seam: an endpoint in another wire format runs the chat spine, its errors answered in the
dialect's envelope (at the edge, whatever raised them) and a broken stream ended with the dialect's event.
A toy dialect (upper-cases the answer) shows the contract without any real wire format."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from support import AUTH, base_config

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.dataplane.dialect import Dialect
from proxy.dataplane.spine import serve
from proxy.errors import GatewayError, InvalidRequest
from proxy.plugin import Endpoint, JSONObject, Reply, StreamReader
from proxy.testing.fake_provider import Behaviour, FakeProvider
from proxy.upstream.sse import SSEEvent


class Shout(StreamReader):
    def __init__(self, inner: StreamReader) -> None:
        super().__init__()
        self.inner = inner

    def on_event(self, event: SSEEvent) -> bytes | None:
        piece = self.inner.on_event(event)
        self.usage, self.error = self.inner.usage, self.inner.error
        self.complete, self.finished = self.inner.complete, self.inner.finished
        return piece.upper() if piece else None


class Toy(Dialect):
    endpoint = Endpoint.RESPONSES  # no provider here declares it: every call is translated

    def to_chat(self, body: JSONObject) -> JSONObject:
        if "forbidden" in body:
            raise InvalidRequest("'forbidden' has no chat form.", param="forbidden")
        return {"messages": [{"role": "user", "content": str(body.get("say"))}], "stream": body.get("stream")}

    def reply(self, reply: Reply) -> Reply:
        return Reply(reply.body.upper(), reply.usage)

    def stream(self, reader: StreamReader) -> StreamReader:
        return Shout(reader)

    def error_response(self, error: GatewayError) -> web.Response:
        return web.json_response({"toy_error": error.message}, status=error.status)

    def stream_error(self, message: str) -> bytes:
        return b"event: toy-error\ndata: " + orjson.dumps(message) + b"\n\n"


async def toy(request: web.Request) -> web.StreamResponse:
    return await serve(request, Endpoint.RESPONSES, Toy())


async def client(aiohttp_client: Any, fake: FakeProvider) -> Any:
    app = create_app(parse_settings(base_config(fake.url)))
    app.router.add_post("/toy", toy)
    return await aiohttp_client(app)


async def test_a_translated_answer_comes_back_through_the_dialect(
    aiohttp_client: Any, fake: FakeProvider
) -> None:
    c = await client(aiohttp_client, fake)
    resp = await c.post("/toy", json={"model": "small", "say": "hi"}, headers=AUTH)
    assert resp.status == 200 and b"HELLO FROM THE FAKE PROVIDER" in await resp.read()
    assert fake.received[-1].path == "/v1/chat/completions"
    assert fake.received[-1].body["messages"] == [{"role": "user", "content": "hi"}]


async def test_errors_take_the_dialects_envelope(aiohttp_client: Any, fake: FakeProvider) -> None:
    c = await client(aiohttp_client, fake)
    resp = await c.post("/toy", json={"model": "small", "say": "hi"})
    assert resp.status == 401 and "toy_error" in await resp.json()
    resp = await c.post("/toy", json={"model": "small", "forbidden": 1}, headers=AUTH)
    assert resp.status == 400 and await resp.json() == {"toy_error": "'forbidden' has no chat form."}
    fake.script("small", Behaviour.json(400, {"error": {"message": "bad one"}}))
    resp = await c.post("/toy", json={"model": "small", "say": "hi"}, headers=AUTH)
    assert resp.status == 400 and await resp.json() == {"toy_error": "bad one"}
    resp = await c.post("/v1/chat/completions", json={"model": "small"}, headers=AUTH)
    assert "error" in await resp.json(), "chat keeps OpenAI's envelope"


async def test_a_broken_stream_ends_with_the_dialects_event(aiohttp_client: Any, fake: FakeProvider) -> None:
    c = await client(aiohttp_client, fake)
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    fake.script(
        "small", Behaviour(200, b"", "text/event-stream", {}, [chunk, chunk], fault="reset", reset_after=2)
    )
    resp = await c.post("/toy", json={"model": "small", "say": "hi", "stream": True}, headers=AUTH)
    text = await resp.text()
    assert text.startswith('DATA: {"CHOICES"') and "event: toy-error" in text
