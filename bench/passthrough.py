"""The yardstick: a bare aiohttp pass-through (no auth, no parsing, no metering) on uvloop, as the gateway
runs. It forwards the body to the upstream over one shared ClientSession and returns the bytes; a stream
is relayed chunk by chunk as it arrives.

    python -m bench.passthrough --port 8081 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {"Content-Type": "application/json"}
    url = request.app[UPSTREAM] + request.path
    async with request.app[SESSION].post(url, data=body, headers=headers) as up:
        out = {"Content-Type": up.headers.get("Content-Type", "application/json")}
        if not out["Content-Type"].startswith("text/event-stream"):
            return web.Response(status=up.status, body=await up.read(), headers=out)
        response = web.StreamResponse(status=up.status, headers=out)
        await response.prepare(request)
        async for chunk in up.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description="A bare aiohttp pass-through, the benchmark's yardstick.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9001")
    args = parser.parse_args()

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    app = web.Application()
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/{path:.*}", forward)
    app.router.add_get("/healthz", healthz)
    import uvloop

    uvloop.install()  # the same loop policy as the gateway (proxy.cli.main.run)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
