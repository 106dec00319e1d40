"""A local provider for the OpenAI family's other endpoints, answering as the providers document them.

On top of :class:`ThreadedFakeProvider` (JSON endpoints scripted per model: moderations, images, rerank):
- ``/v1/audio/speech`` streams audio bytes in chunks (``speech_chunks``); with ``speech_gate`` set it
  sends the first chunk, then waits for the gate before the rest: a test opens the gate only once its
  client has received the first chunk, which a relay that buffered the answer would never deliver;
- ``/v1/audio/transcriptions`` and ``/translations`` read the multipart upload as it arrives, chunk by
  chunk, never whole (:class:`UploadSeen`); ``upload_gate_bytes``: the event ``upload_progress`` is set
  once that many bytes have arrived, while the client may still be sending. The answer is scripted per
  model like any other (the model is read from the form).
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

from aiohttp import web

from proxy.testing.fake_provider import Behaviour, Received, ThreadedFakeProvider

_MODEL = re.compile(rb'name="model"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]*)\r\n')
_FILENAME = re.compile(rb'filename="([^"]*)"')


@dataclass
class UploadSeen:
    model: str | None
    headers: dict[str, str]
    size: int = 0  # bytes of the body received
    reads: int = 0  # reads it took
    filename: str | None = None
    head: bytes = b""  # its first bytes (the form fields)
    sizes: list[int] = field(default_factory=list)


class MediaProvider(ThreadedFakeProvider):
    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[UploadSeen] = []
        self.upload_gate_bytes = 0
        self.upload_progress = threading.Event()
        self.speech_chunks: list[bytes] = [b"ID3\x04" + bytes(1020), bytes(range(256)) * 8, b"\xff\xfb" * 512]
        self.speech_gate: threading.Event | None = None
        self.speech_sent = 0  # chunks sent (or being sent) by the last speech answer
        self.speech_behaviours: list[Behaviour] = []  # before the audio: errors to answer first

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_post("/v1/audio/transcriptions", self.upload)
        app.router.add_post("/v1/audio/translations", self.upload)
        app.router.add_post("/v1/{path:.*}", self.handle)
        app.router.add_get("/v1/models", self.models)
        return app

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(Received("POST", request.path, dict(request.headers), body))
        if self.speech_behaviours:
            return await self.play(request, self.speech_behaviours.pop(0))
        response = web.StreamResponse(status=200, headers={"Content-Type": "audio/mpeg"})
        await response.prepare(request)
        self.speech_sent = 0
        for i, chunk in enumerate(self.speech_chunks):
            if i == 1 and self.speech_gate is not None:
                gate = self.speech_gate
                opened = await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)
                if not opened:
                    return response  # the test failed already: end without the rest
            self.speech_sent = i + 1  # counted before it leaves: the client may read it before write returns
            try:
                await response.write(chunk)
            except ConnectionError:
                return response
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.StreamResponse:
        seen = UploadSeen(None, dict(request.headers))
        self.uploads.append(seen)
        head = bytearray()
        async for chunk in request.content.iter_any():
            seen.size += len(chunk)
            seen.reads += 1
            seen.sizes.append(len(chunk))
            if len(head) < 65536:
                head += chunk[: 65536 - len(head)]
            if seen.model is None:
                found = _MODEL.search(head)
                seen.model = found.group(1).decode() if found else None
            if self.upload_gate_bytes and seen.size >= self.upload_gate_bytes:
                self.upload_progress.set()
        seen.head = bytes(head)
        named = _FILENAME.search(head)
        seen.filename = named.group(1).decode() if named else None
        self.received.append(Received("POST", request.path, seen.headers, {"model": seen.model}))
        queue = self.scripts.get(seen.model or "")
        if not queue:
            return web.json_response({"text": "Hello from the fake provider."})
        behaviour = queue.pop(0) if len(queue) > 1 else queue[0]
        return await self.play(request, behaviour)
