"""The PostgreSQL ledger as an app resource: open it (migrating when ``ledger.migrate_on_start``), run its
writer, publish the writer's lag and backlog on /metrics, close it all at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge

from proxy.gateway import GATEWAY
from proxy.ledger import LedgerUnavailable, open_ledger, writer_for

log = logging.getLogger("efflux.ledger")


def background(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx after the gateway's own resources (the store must be open)."""

    async def run() -> AsyncIterator[None]:
        gw = app[GATEWAY]
        settings = gw.snapshot.settings
        ledger = open_ledger(settings)
        if ledger is None:
            yield
            return
        assert settings.ledger is not None
        try:
            await ledger.open(migrate_schema=settings.ledger.migrate_on_start)
        except LedgerUnavailable as exc:
            # Without the schema the writer cannot start; with it, it retries until PostgreSQL answers.
            if settings.ledger.migrate_on_start:
                raise
            log.warning("ledger database unreachable at startup", extra={"fields": {"error": str(exc)}})
        writer = writer_for(ledger, settings, gw.store)
        registry = gw.metrics.registry
        lag = Gauge(
            "efflux_ledger_writer_lag_seconds",
            "Age of the oldest usage record not yet in PostgreSQL (0: caught up)",
            registry=registry,
        )
        lag.set_function(lambda: writer.lag)
        backlog = Gauge(
            "efflux_ledger_writer_backlog",
            "Usage records waiting for the PostgreSQL ledger",
            registry=registry,
        )
        backlog.set_function(lambda: writer.backlog)
        gw.ledger, gw.ledger_writer = ledger, writer
        task = asyncio.get_running_loop().create_task(writer.run(), name="efflux-ledger-writer")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            registry.unregister(lag)
            registry.unregister(backlog)
            gw.ledger = None
            await ledger.close()

    return run()
