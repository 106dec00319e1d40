"""``GET /admin/models?provider=&q=&feature=``: the synced catalogues, searchable
(:mod:`proxy.services.catalogue`); ``GET /admin/models/served``: what ``/v1/models`` lists for a key that
may use every model (each name once, with every provider serving it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from proxy.admin.openapi import operation
from proxy.dataplane.models import served as served_models
from proxy.edge.http import gateway, json_response, limit
from proxy.errors import InvalidRequest
from proxy.services import catalogue
from proxy.services.catalogue import ModelPage


@operation(
    "Search the synced model catalogues",
    response=ModelPage,
    query=(
        ("provider", "string", "only this provider's models"),
        ("q", "string", "case-insensitive substring of the model name"),
        ("feature", "string", "a feature the model lists (tools, thinking, input:image, ...)"),
        ("limit", "integer", "1..1000, default 100"),
        ("cursor", "string", "next_cursor of the previous page"),
    ),
    tag="providers",
)
async def search(request: web.Request) -> web.Response:
    query = request.query
    provider, text, feature = query.get("provider"), (query.get("q") or "").lower(), query.get("feature")
    count = limit(query)
    try:
        start = int(query.get("cursor") or 0)
    except ValueError:
        raise InvalidRequest("'cursor' is not a cursor this endpoint gave.", param="cursor") from None
    page = await catalogue.search(
        gateway(request), provider=provider, text=text, feature=feature, start=start, count=count
    )
    return json_response(page)


class ServedModels(BaseModel):
    data: list[dict[str, Any]]  # the entries of /v1/models


@operation("What /v1/models lists for a key allowed every model", response=ServedModels, tag="providers")
async def served(request: web.Request) -> web.Response:
    gw = gateway(request)
    return json_response({"object": "list", "data": served_models(gw.snapshot, int(gw.started_at))})


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/models", search)
    router.add_get("/models/served", served)
