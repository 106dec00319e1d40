"""Self-service (``/me``): what a virtual key may see about itself, authenticated by that key.

    GET /me                               the key, its tenant, limits, spent and remaining budget
    GET /me/usage                         this key's own ledger records (paginated)
    GET /me/provider-keys                 the providers its tenant has its own key for
    GET|PUT|DELETE /me/provider-keys/{provider}   the tenant's own provider keys (BYOK)

Every query is pinned to the caller's key and tenant *before* anything from the request is read, so no
parameter (a guessed key name, tenant or cursor) can reach another tenant's data. Keys are managed only
through ``/admin``: nothing here creates a key or changes a limit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.admin.common import json_response, limit, number
from proxy.admin.keys import read_model
from proxy.admin.tenants import (
    ProviderKeyPut,
    delete_provider_key,
    get_provider_key,
    key_info,
    put_provider_key,
)
from proxy.dataplane.spine import authenticate
from proxy.errors import MeteringUnavailable
from proxy.gateway import GATEWAY, Gateway
from proxy.store.base import Scope, StoreUnavailable
from proxy.store.records import RecordQuery
from proxy.tenancy.documents import PROVIDER_KEYS, split_provider_key_id
from proxy.tenancy.keys import VirtualKey

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALLER = web.RequestKey("caller", VirtualKey)


def _gw(request: web.Request) -> Gateway:
    return request.config_dict[GATEWAY]


async def _budget(gw: Gateway, scope: Scope) -> dict[str, object] | None:
    if scope.budget_micro_usd is None:
        return None
    try:
        spend = await gw.store.spend(scope, time.time())
    except StoreUnavailable:
        raise MeteringUnavailable(
            "The gateway's store does not answer; retry shortly.", retry_after=1.0
        ) from None
    return {
        "period": scope.period.value,
        "period_id": spend.period,
        "budget_micro_usd": scope.budget_micro_usd,
        "spent_micro_usd": spend.spent_micro_usd,
        "reserved_micro_usd": spend.reserved_micro_usd,
        "remaining_micro_usd": max(
            0, scope.budget_micro_usd - spend.spent_micro_usd - spend.reserved_micro_usd
        ),
    }


async def me(request: web.Request) -> web.Response:
    gw, key = _gw(request), request[CALLER]
    tenant = gw.snapshot.tenant_scope(key.tenant)
    key_scope = key.scope(tenant.alert_at if tenant else (0.5, 0.8, 1.0))
    return json_response(
        {
            "key": {
                "id": key.id,
                "name": key.name,
                "models": list(key.models),
                "limits": {"rpm": key.rpm, "tpm": key.tpm},
                "budget": await _budget(gw, key_scope),
            },
            "tenant": {
                "name": key.tenant,
                "limits": {"rpm": tenant.rpm if tenant else None, "tpm": tenant.tpm if tenant else None},
                "budget": await _budget(gw, tenant) if tenant else None,
            },
        }
    )


async def usage(request: web.Request) -> web.Response:
    gw, key = _gw(request), request[CALLER]
    q = request.query
    query = RecordQuery(
        key=key.name,
        tenant=key.tenant,
        since=number(q, "since"),
        until=number(q, "until"),
        limit=limit(q),
        cursor=q.get("cursor") or None,
    )
    try:
        page = await gw.store.records(query)
    except StoreUnavailable:
        raise MeteringUnavailable(
            "The gateway's store does not answer; retry shortly.", retry_after=1.0
        ) from None
    return json_response(
        {"data": [dataclasses.asdict(r) for r in page.data], "next_cursor": page.next_cursor}
    )


async def list_provider_keys(request: web.Request) -> web.Response:
    gw, key = _gw(request), request[CALLER]
    rows = []
    for doc_id in sorted(await gw.store.list_docs(PROVIDER_KEYS)):
        tenant, provider = split_provider_key_id(doc_id)
        if tenant == key.tenant:
            rows.append(key_info(tenant, provider, await get_provider_key(gw, tenant, provider)))
    return json_response({"data": rows, "next_cursor": None})


async def get_key(request: web.Request) -> web.Response:
    gw, key = _gw(request), request[CALLER]
    provider = request.match_info["provider"]
    return json_response(key_info(key.tenant, provider, await get_provider_key(gw, key.tenant, provider)))


async def put_key(request: web.Request) -> web.Response:
    gw, key = _gw(request), request[CALLER]
    body = await read_model(request, ProviderKeyPut)
    return json_response(await put_provider_key(gw, key.tenant, request.match_info["provider"], body))


async def delete_key(request: web.Request) -> web.Response:
    gw, key = _gw(request), request[CALLER]
    await delete_provider_key(gw, key.tenant, request.match_info["provider"])
    return json_response({"deleted": True})


def create_me_app() -> web.Application:
    @web.middleware
    async def caller(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CALLER] = authenticate(request, _gw(request).snapshot)
        return await handler(request)

    app = web.Application(middlewares=[caller])
    app.router.add_get("", me)
    app.router.add_get("/", me)
    app.router.add_get("/usage", usage)
    app.router.add_get("/provider-keys", list_provider_keys)
    app.router.add_get("/provider-keys/{provider}", get_key)
    app.router.add_put("/provider-keys/{provider}", put_key)
    app.router.add_delete("/provider-keys/{provider}", delete_key)
    return app
