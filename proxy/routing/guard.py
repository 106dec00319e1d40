"""What dispatch remembers between requests, one per app: the circuit breakers, the balancing counts and
the retry budget (:mod:`proxy.routing.breaker`, :mod:`proxy.routing.balance`, :mod:`proxy.routing.retry`).

``background`` is the app's ``cleanup_ctx`` for it: built once the gateway's store, metrics and alerter
exist, with the task that takes in other replicas' breaker transitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from proxy.gateway import GATEWAY
from proxy.observe.metrics import Metrics
from proxy.routing.balance import Balancer
from proxy.routing.breaker import Breakers
from proxy.routing.retry import RetryBudget


@dataclass(slots=True)
class Guard:
    breakers: Breakers
    balancer: Balancer
    budget: RetryBudget
    metrics: Metrics | None = None


GUARD = web.AppKey("guard", Guard)


async def background(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    budget = gw.snapshot.settings.server.retry_budget
    guard = app[GUARD] = Guard(
        Breakers(gw.store, gw.metrics, gw.alerts),
        Balancer(),
        RetryBudget(budget.ratio, budget.min_per_second, budget.burst),
        gw.metrics,
    )
    task = asyncio.get_running_loop().create_task(guard.breakers.run(), name="efflux-breakers")
    try:
        yield
    finally:
        task.cancel()
        await guard.breakers.close()
