"""Searching the synced model catalogues: each entry is one provider's model as routed
(``<provider>/<model>``), with the price in force (YAML's when pinned, else the synced one), its features
and whether it is on its way out."""

from __future__ import annotations

import time

from pydantic import BaseModel

from proxy.gateway import Gateway
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


async def search(
    gw: Gateway, *, provider: str | None, text: str, feature: str | None, start: int, count: int
) -> dict[str, object]:
    """One page (``count`` entries from ``start``) of the live entries matching every filter given:
    ``provider``, ``text`` (a lower-case substring of the model name), ``feature``."""
    snapshot = gw.snapshot
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
    return {"data": page, "next_cursor": str(start + count) if more else None}
