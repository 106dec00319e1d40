"""Serving until SIGTERM/SIGINT, then a graceful shutdown (what ``efflux-gateway serve`` runs).

:func:`gateway_runner` is aiohttp's runner with the gateway's server options (``keepalive_timeout``, the
request handlers' log of :mod:`proxy.edge.bad_requests`); it listens through
:class:`proxy.edge.connections.ClientSite` (``header_timeout``, ``max_connections``).

On the signal:
1. readiness goes off (``/readyz`` answers 503) while the listener still accepts, for
   ``server.shutdown_delay`` seconds, so a load balancer stops sending new work before connections are
   refused;
2. the listener closes; idle keep-alive connections close; requests in flight, streams included, run to
   their end for up to ``server.drain_timeout`` (aiohttp's shutdown timeout; only then are they cancelled,
   and a cancelled request is still metered by the spine's ``finally``);
3. the app's cleanup contexts run in reverse: background tasks stop, the ledger/journal and the alert
   deliveries are flushed, the store and the upstream HTTP session close. The process then exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from proxy.config import ServerConfig
from proxy.edge.announce import announce
from proxy.edge.bad_requests import request_log
from proxy.edge.connections import ClientSite
from proxy.gateway import GATEWAY

log = logging.getLogger("efflux")


def gateway_runner(app: web.Application, server: ServerConfig) -> web.AppRunner:
    """aiohttp's runner with the gateway's server options; listen with :class:`ClientSite`."""
    return web.AppRunner(
        app,
        handle_signals=False,  # ours below: readiness off before the listener closes
        access_log=None,
        handler_cancellation=False,  # a client going away must not cancel the handler: it meters
        shutdown_timeout=server.drain_timeout,
        keepalive_timeout=server.keepalive_timeout,
        logger=request_log(),  # malformed requests: a short line now and then, no head, no traceback
    )


async def serve_until_signalled(
    app: web.Application, host: str, port: int, server: ServerConfig, *, reuse_port: bool = False
) -> None:
    runner = gateway_runner(app, server)
    await runner.setup()
    try:
        site = ClientSite(runner, host, port, server, reuse_port=reuse_port)
        await site.start()
        announce(host, site.ports or [port], server.admin_token)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        gateway = app.get(GATEWAY)
        if gateway is not None:
            gateway.accepting = False
        log.info(
            "shutting down",
            extra={"fields": {"msg": "shutting down", "drain_timeout": server.drain_timeout}},
        )
        if server.shutdown_delay:
            await asyncio.sleep(server.shutdown_delay)
    finally:
        await runner.cleanup()
