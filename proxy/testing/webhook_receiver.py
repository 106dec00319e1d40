"""A local webhook receiver for alert tests: keeps every POST's raw body and headers, answers with the
statuses it is given (then 204), and checks the ``X-Efflux-Signature`` of a body."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass

import orjson
from aiohttp import web


@dataclass(frozen=True, slots=True)
class Delivery:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, object]:
        data = orjson.loads(self.raw)
        assert isinstance(data, dict)
        return data

    def signed_by(self, secret: str) -> bool:
        """Whether the signature header is the HMAC-SHA256 of the raw body under ``secret``."""
        expected = "sha256=" + hmac.new(secret.encode(), self.raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-Efflux-Signature", ""), expected)


class WebhookReceiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []  # answered 2xx
        self.refused = 0  # POSTs answered with a scripted failure
        self.fail_next: list[int] = []  # statuses to answer with, in order, before succeeding
        self.url = ""
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.fail_next:
            self.refused += 1
            return web.Response(status=self.fail_next.pop(0))
        self.deliveries.append(Delivery(request.path, dict(request.headers), raw))
        self._arrived.set()
        return web.Response(status=204)

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def wait_for(self, count: int, bound: float = 15.0) -> list[Delivery]:
        """The deliveries once there are ``count`` (a bound on a hang, not a timing claim)."""
        async with asyncio.timeout(bound):
            while len(self.deliveries) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.deliveries

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
