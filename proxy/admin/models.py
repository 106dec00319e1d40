"""``GET /admin/models?provider=&q=&feature=``: the synced catalogues, searchable.

Each entry is one provider's model as routed (``<provider>/<model>``), with the price in force (YAML's
when pinned, else the synced one), its features and whether it is on its way out.
"""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_response, limit
from proxy.errors import InvalidRequest
from proxy.state import catalogues


class ModelEntry(BaseModel):
    id: str
    model: str
    provider: str
    provider_type: str
    context_length: int | None
    pricing: dict[str, float] | None
    features: list[str]
    owned_by: str | None
    status: str
    retires_at: float | None


class ModelPage(BaseModel):
    data: list[ModelEntry]
    next_cursor: str | None


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
    gw = gateway(request)
    snapshot = gw.snapshot
    query = request.query
    provider, text, feature = query.get("provider"), (query.get("q") or "").lower(), query.get("feature")
    count = limit(query)
    try:
        start = int(query.get("cursor") or 0)
    except ValueError:
        raise InvalidRequest("'cursor' is not a cursor this endpoint gave.", param="cursor") from None
    docs = await gw.store.list_docs(catalogues.KIND)
    if provider:
        docs = {provider: docs[provider]} if provider in docs else {}
    matches: list[dict[str, object]] = []
    for name, model, entry in catalogues.live_entries(docs, time.time()):
        features = entry.get("features")
        listed = [f for f in features if isinstance(f, str)] if isinstance(features, list) else []
        if (text and text not in model.lower()) or (feature and feature not in listed):
            continue
        instance = snapshot.providers.get(name)
        price = snapshot.price(name, model)
        retires_at = entry.get("retires_at")
        context = entry.get("context_length")
        owner = entry.get("owned_by")
        matches.append(
            {
                "id": f"{name}/{model}",
                "model": model,
                "provider": name,
                "provider_type": instance.provider_type.value if instance else "unknown",
                "context_length": context if isinstance(context, int) else None,
                "pricing": price.usd_per_million() if price else None,
                "features": listed,
                "owned_by": owner if isinstance(owner, str) else None,
                "status": "retiring" if retires_at is not None else "active",
                "retires_at": retires_at,
            }
        )
    matches.sort(key=lambda m: str(m["id"]))
    page = matches[start : start + count]
    more = start + count < len(matches)
    return json_response({"data": page, "next_cursor": str(start + count) if more else None})


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/models", search)
