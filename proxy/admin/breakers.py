"""Circuit breakers: ``GET /admin/breakers``, each upstream target's breaker (per credential: the shared
key's, and each tenant key's that has failed) as this replica sees it (states taken from other replicas
arrive within about half a second, see :mod:`proxy.routing.breaker`)."""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel

from proxy.admin.openapi import operation
from proxy.edge.http import json_response
from proxy.routing.guard import GUARD


class BreakerModel(BaseModel):
    target: str
    provider: str
    model: str
    credential: str | None  # None: the provider's shared key; else a tenant's own key (its id, never the key)
    state: str  # closed | open | half_open
    failures: int
    open_until: float | None
    retry_after_until: float | None
    opened: int


class BreakerListModel(BaseModel):
    data: list[BreakerModel]
    now: float


@operation(
    "Circuit breakers per upstream target (only targets that have failed at least once are listed)",
    response=BreakerListModel,
    tag="reliability",
)
async def breakers(request: web.Request) -> web.Response:
    guard = request.config_dict.get(GUARD)
    items = [] if guard is None else [b.view() for b in guard.breakers.all()]
    items.sort(key=lambda b: (str(b["target"]), str(b["credential"] or "")))
    return json_response({"data": items, "now": time.time()})


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/breakers", breakers)
