"""``/v1/models``: the routing table as the calling key sees it, OpenAI-shaped with the gateway's extras
(``provider``, ``provider_type``, ``context_length``, ``pricing`` per 1M tokens, ``status``, and for a
synced model its provider stopped listing, ``status: retiring`` with ``retires_at``). Each name is listed
once; ``providers`` lists every provider serving it (the first is the one described at the top level), so
a model picker can group a name's offers by provider.

Only exact names are listed: a wildcard route (``openrouter/*``) stands for models it cannot enumerate.
``GET /v1/models/{id}`` answers for any name that resolves, wildcard matches included.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson
from aiohttp import web

from proxy.dataplane.spine import authenticate
from proxy.errors import ModelNotFound
from proxy.gateway import CONTEXT, GATEWAY
from proxy.routing.table import model_allowed
from proxy.state.snapshot import Snapshot
from proxy.tenancy.keys import VirtualKey


def describe(
    snapshot: Snapshot, model: str, created: int, tenant: str | None = None
) -> dict[str, object] | None:
    resolution = snapshot.resolve(model)
    if resolution is None:
        return None
    offers = []  # every provider serving the name, in routing order (the first serves unless it fails)
    for choice in resolution.choices:
        provider = snapshot.providers.get(choice.provider)
        if provider is None or not snapshot.serving(choice.provider, tenant):
            continue
        price = snapshot.price(choice.provider, choice.model)
        offers.append(
            {
                "provider": choice.provider,
                "provider_type": provider.provider_type.value,
                "upstream_model": choice.model,
                "context_length": price.context_length if price else None,
                "pricing": price.usd_per_million() if price else None,
            }
        )
    if not offers:
        return None
    first = offers[0]
    return {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": first["provider"],
        **first,
        "status": "retiring" if model in snapshot.retiring else "active",
        "retires_at": _unix(snapshot.retiring.get(model)),
        "providers": offers,
    }


def served(
    snapshot: Snapshot, created: int, patterns: Collection[str] = ("*",), tenant: str | None = None
) -> list[dict[str, object]]:
    """The entries of ``/v1/models`` for a key allowed ``patterns`` (the admin's view: every model)."""
    data = []
    names = dict.fromkeys([*snapshot.routing.exact, *snapshot.overlay, *snapshot.synced])
    for name in names:
        if model_allowed(patterns, name):
            entry = describe(snapshot, name, created, tenant)
            if entry is not None:
                data.append(entry)
    return data


async def list_models(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    snapshot = gw.snapshot
    key = await _caller(request, snapshot)
    data = served(snapshot, int(gw.started_at), key.models, key.tenant)
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    snapshot = gw.snapshot
    key = await _caller(request, snapshot)
    model = request.match_info["model"]
    allowed = model_allowed(key.models, model)
    entry = describe(snapshot, model, int(gw.started_at), key.tenant) if allowed else None
    if entry is None:
        raise ModelNotFound(f"The model '{model}' does not exist on this gateway.", param="model")
    return web.Response(body=orjson.dumps(entry), content_type="application/json")


def _unix(when: float | None) -> int | None:
    return None if when is None else int(when)  # unix seconds, like ``created``


async def _caller(request: web.Request, snapshot: Snapshot) -> VirtualKey:
    key = await authenticate(request, snapshot)
    ctx = request[CONTEXT]
    ctx.key, ctx.tenant = key.name, key.tenant
    return key
