"""A scriptable local provider: plays OpenAI-compatible (and Anthropic) upstreams for tests, the demo
config and the benchmark. It counts every request it receives.

What it answers is chosen per requested ``model``: a queue of :class:`Behaviour` (the last one repeats),
or by default a small generated answer with correct usage. A behaviour can replay a recorded fixture
(``Behaviour.fixture(...)`` with the manifest of ``tests/fixtures``) or inject a fault: refuse the
connection, stall, reset after N chunks, drip slowly, answer with any status, headers and body.

Run alone: ``python -m proxy.testing.fake_provider --port 9001`` (what the example config points at).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web

_EVENT_END = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")


@dataclass
class Behaviour:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # a streamed body, one write each
    chunk_delay: float = 0.0  # seconds between chunks (a slow drip)
    delay: float = 0.0  # seconds before the status line
    fault: str | None = None  # "refuse": close without answering; "reset": cut after `reset_after` chunks
    reset_after: int = 0
    stall: float = 0.0  # after the chunks, hold the connection open this long without sending
    # A chat answer (an assistant message: content and/or tool_calls) sent as JSON or as a stream, as
    # the request asks; ``usage`` its (prompt, completion) tokens.
    message: dict[str, object] | None = None
    usage: tuple[int, int] = (10, 5)

    @classmethod
    def fixture(cls, root: Path, name: str) -> Behaviour:
        """Replay a recorded fixture byte for byte, as its manifest (index.json) describes."""
        entry = fixture_entry(root, name)
        headers = dict(entry.get("headers") or {})
        content_type = headers.pop("content-type", "application/json")
        kind = entry.get("kind")
        if kind == "chunks":
            spec = orjson.loads((root / name).read_bytes())
            chunks = [base64.b64decode(c) for c in spec["chunks_b64"]]
            return cls(entry["status"], b"", content_type, headers, chunks, chunk_delay=0.002)
        raw = (root / name).read_bytes()
        if kind == "sse":
            return cls(entry["status"], b"", content_type, headers, split_events(raw))
        return cls(entry["status"], raw, content_type, headers)

    @classmethod
    def answer(
        cls,
        content: str | None = None,
        tool_calls: list[dict[str, object]] | None = None,
        usage: tuple[int, int] = (10, 5),
    ) -> Behaviour:
        """A chat answer rendered for the request: JSON, or a stream when it asks for one.
        ``tool_calls``: ``{"id", "name", "arguments"}`` each."""
        message: dict[str, object] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in tool_calls
            ]
        return cls(message=message, usage=usage)

    @classmethod
    def json(cls, status: int, data: object, **kw: object) -> Behaviour:
        return cls(status, orjson.dumps(data), "application/json", **kw)  # type: ignore[arg-type]


_MANIFESTS: dict[Path, dict[str, dict[str, object]]] = {}


def fixture_entry(root: Path, name: str) -> dict:  # type: ignore[type-arg]
    manifest = _MANIFESTS.get(root)
    if manifest is None:
        entries = orjson.loads((root / "index.json").read_bytes())
        manifest = _MANIFESTS[root] = {e["file"]: e for e in entries}
    return manifest[name]


def split_events(raw: bytes) -> list[bytes]:
    """Split an SSE body after each blank line, keeping every byte (the pieces join back to ``raw``)."""
    out: list[bytes] = []
    pos = 0
    for match in _EVENT_END.finditer(raw):
        out.append(raw[pos : match.end()])
        pos = match.end()
    if pos < len(raw):
        out.append(raw[pos:])
    return out


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: object
    peer: str = ""  # the caller's address and port: one per connection, so tests can see reuse
    raw: bytes = b""  # the body as sent (a signature covers these bytes)
    target: str = ""  # the request line's target as sent: the path still URL-encoded, and the query


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


class FakeProvider:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: dict[str, list[Behaviour]] = defaultdict(list)
        self.default: Behaviour | None = None
        self.models_body: bytes | None = None
        # GET answers by path (catalogues: "/v1/models", "/api/v1/models"); beats ``models_body``
        self.gets: dict[str, Behaviour] = {}
        # POST answers by path, for providers that name the model in the URL (Azure deployments, Gemini,
        # Bedrock): a queue like ``scripts`` (the last one repeats); checked before the model's script.
        self.paths: dict[str, list[Behaviour]] = defaultdict(list)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting -------------------------------------------------------------------------------
    def script(self, model: str, *behaviours: Behaviour) -> None:
        self.scripts[model] = list(behaviours)

    def script_path(self, path: str, *behaviours: Behaviour) -> None:
        self.paths[path] = list(behaviours)

    def count(self, model: str | None = None) -> int:
        return sum(1 for r in self.received if model is None or _model(r.body) == model)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- serving ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/{path:.*}", self.handle)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/api/v1/models", self.models)  # AiHubMix's catalogue, beside /v1
        app.router.add_post("/{path:.*}", self.handle)  # paths outside /v1 (scripted with script_path)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeProvider:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def models(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received("GET", request.path, dict(request.headers), None, _peer(request)))
        scripted = self.gets.get(request.path)
        if scripted is not None:
            return await self.play(request, scripted)
        body = self.models_body or orjson.dumps(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.scripts],
            }
        )
        return web.Response(body=body, content_type="application/json")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        received = Received(
            "POST", request.path, dict(request.headers), body, _peer(request), raw, request.raw_path
        )
        self.received.append(received)
        queue = self.paths.get(request.path) or self.scripts.get(_model(body) or "")
        if queue:
            behaviour = queue.pop(0) if len(queue) > 1 else queue[0]
        else:
            behaviour = self.default or generated(request.path, body)
        if behaviour.message is not None:
            behaviour = chat_answer(body, behaviour.message, behaviour.usage)
        return await self.play(request, behaviour)

    async def play(self, request: web.Request, b: Behaviour) -> web.StreamResponse:
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.fault == "refuse":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=599)
        if b.chunks is None:
            return web.Response(
                status=b.status, body=b.body, headers={**b.headers, "Content-Type": b.content_type}
            )
        response = web.StreamResponse(status=b.status, headers={**b.headers, "Content-Type": b.content_type})
        await response.prepare(request)
        for i, chunk in enumerate(b.chunks):
            if b.fault == "reset" and i == b.reset_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(chunk)
            if b.chunk_delay:
                await asyncio.sleep(b.chunk_delay)
        if b.stall:
            await asyncio.sleep(b.stall)
        await response.write_eof()
        return response


def _model(body: object) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def generated(path: str, body: object) -> Behaviour:
    """A small, correct OpenAI-style answer for any request: the default when nothing is scripted."""
    model = _model(body) or "fake-model"
    created = int(time.time())
    prompt = max(1, len(orjson.dumps(body)) // 4)
    if path.endswith("/embeddings"):
        data = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.1, 0.2]}],
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
        return Behaviour.json(200, data)
    words = ["Hello", " from", " the", " fake", " provider", "."]
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
    stream = isinstance(body, dict) and body.get("stream") is True
    legacy = path.endswith("/completions") and not path.endswith("/chat/completions")
    if not stream:
        if legacy:
            choice: dict[str, object] = {
                "index": 0,
                "text": "".join(words),
                "finish_reason": "stop",
                "logprobs": None,
            }
            obj = "text_completion"
        else:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(words)},
                "finish_reason": "stop",
            }
            obj = "chat.completion"
        return Behaviour.json(
            200,
            {
                "id": "fake-1",
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
            },
        )
    chunks: list[bytes] = []
    kind = "text_completion" if legacy else "chat.completion.chunk"
    for i, word in enumerate(words):
        if legacy:
            c: dict[str, object] = {"index": 0, "text": word, "finish_reason": None}
        else:
            c = {
                "index": 0,
                "delta": {"role": "assistant", "content": word} if i == 0 else {"content": word},
                "finish_reason": None,
            }
        chunks.append(
            _sse({"id": "fake-1", "object": kind, "created": created, "model": model, "choices": [c]})
        )
    end: dict[str, object] = (
        {"index": 0, "text": "", "finish_reason": "stop"}
        if legacy
        else {"index": 0, "delta": {}, "finish_reason": "stop"}
    )
    chunks.append(
        _sse({"id": "fake-1", "object": kind, "created": created, "model": model, "choices": [end]})
    )
    options = body.get("stream_options") if isinstance(body, dict) else None
    if isinstance(options, dict) and options.get("include_usage"):
        chunks.append(
            _sse(
                {
                    "id": "fake-1",
                    "object": kind,
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    chunks.append(b"data: [DONE]\n\n")
    return Behaviour(200, b"", "text/event-stream", {}, chunks)


def chat_answer(body: object, message: dict[str, object], usage: tuple[int, int]) -> Behaviour:
    """``message`` as a chat completion, or as a stream (a role chunk, the content, each tool call's name
    then its arguments in two pieces, the finish, the usage chunk, ``[DONE]``) when the body asks."""
    model = _model(body) or "fake-model"
    calls = message.get("tool_calls")
    finish = "tool_calls" if calls else "stop"
    counts = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    head = {"id": "fake-answer", "created": int(time.time()), "model": model}
    if not (isinstance(body, dict) and body.get("stream") is True):
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return Behaviour.json(
            200, {**head, "object": "chat.completion", "choices": [choice], "usage": counts}
        )

    def chunk(delta: dict[str, object], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return _sse({**head, "object": "chat.completion.chunk", "choices": [choice]})

    chunks = [chunk({"role": "assistant", "content": ""})]
    content = message.get("content")
    if isinstance(content, str) and content:
        half = len(content) // 2
        chunks += [chunk({"content": content[:half]}), chunk({"content": content[half:]})]
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        function, arguments = call["function"], call["function"]["arguments"]
        start = {"index": i, "id": call["id"], "type": "function", "function": {"name": function["name"]}}
        chunks.append(chunk({"tool_calls": [{**start, "function": {**start["function"], "arguments": ""}}]}))
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, finish))
    chunks.append(_sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": counts}))
    chunks.append(b"data: [DONE]\n\n")
    return Behaviour(200, b"", "text/event-stream", {}, chunks)


def _sse(data: object) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="A local fake OpenAI-compatible provider.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    web.run_app(FakeProvider().app(), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()


class ThreadedFakeProvider(FakeProvider):
    """A FakeProvider on its own event loop in a background thread, for tests whose clients block
    (the official ``openai`` sync client) or that talk to gateways running as separate processes."""

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start_in_thread(self) -> ThreadedFakeProvider:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake provider did not start")
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
