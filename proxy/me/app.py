"""Self-service (``/me``): what a virtual key may see about itself, authenticated by that key.

    GET /me                               the key, its tenant, limits, spent and remaining budget
    GET /me/usage                         this key's own ledger records (paginated)
    GET /me/provider-keys                 the providers its tenant has its own key for
    GET|PUT|DELETE /me/provider-keys/{provider}   the tenant's own provider keys (BYOK)
    POST /me/estimate                     what a chat request would cost with this key (a model it may use)

Every query is pinned to the caller's key and tenant *before* anything from the request is read, so no
parameter (a guessed key name, tenant or cursor) can reach another tenant's data. Keys are managed only
through ``/admin``: nothing here creates a key or changes a limit. The logic is
:mod:`proxy.services.budgets` and :mod:`proxy.services.provider_keys`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.dataplane.body import read_body
from proxy.dataplane.spine import authenticate
from proxy.edge.http import gateway, json_response, limit, number, read_model
from proxy.errors import MeteringUnavailable, ModelNotAllowed
from proxy.plugin import Endpoint
from proxy.routing.table import model_allowed
from proxy.services import analytics, budgets, estimate, provider_keys
from proxy.services.provider_keys import ProviderKeyPut
from proxy.store.base import StoreUnavailable
from proxy.store.records import RecordQuery
from proxy.tenancy.keys import VirtualKey

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALLER = web.RequestKey("caller", VirtualKey)


def _store_down() -> MeteringUnavailable:
    return MeteringUnavailable("The gateway's store does not answer; retry shortly.", retry_after=1.0)


async def me(request: web.Request) -> web.Response:
    try:
        return json_response(await budgets.caller(gateway(request), request[CALLER]))
    except StoreUnavailable:
        raise _store_down() from None


async def usage(request: web.Request) -> web.Response:
    key = request[CALLER]
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
        return json_response(await analytics.records_page(gateway(request), query))
    except StoreUnavailable:
        raise _store_down() from None


async def list_provider_keys(request: web.Request) -> web.Response:
    rows = await provider_keys.tenant_provider_keys(gateway(request), request[CALLER].tenant)
    return json_response({"data": rows, "next_cursor": None})


async def get_key(request: web.Request) -> web.Response:
    tenant, provider = request[CALLER].tenant, request.match_info["provider"]
    return json_response(await provider_keys.provider_key_info(gateway(request), tenant, provider))


async def put_key(request: web.Request) -> web.Response:
    tenant, provider = request[CALLER].tenant, request.match_info["provider"]
    body = await read_model(request, ProviderKeyPut)
    return json_response(await provider_keys.put_provider_key(gateway(request), tenant, provider, body))


async def delete_key(request: web.Request) -> web.Response:
    tenant, provider = request[CALLER].tenant, request.match_info["provider"]
    return json_response(await provider_keys.delete_provider_key(gateway(request), tenant, provider))


async def estimate_cost(request: web.Request) -> web.Response:
    """``POST /admin/estimate`` for this key: only a model the key may use, its own ledger for the
    typical answer length."""
    key = request[CALLER]
    gw = gateway(request)
    snapshot = gw.snapshot
    body = await read_body(request, Endpoint.CHAT, snapshot.settings.server.max_body_bytes)
    if not model_allowed(key.models, body.model):
        raise ModelNotAllowed(f"This key may not use the model '{body.model}'.", param="model")
    return json_response(await estimate.estimate(gw, snapshot, body, key=key.name, tenant=key.tenant))


def create_me_app() -> web.Application:
    @web.middleware
    async def caller(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CALLER] = await authenticate(request, gateway(request).snapshot)
        return await handler(request)

    app = web.Application(middlewares=[caller])
    app.router.add_get("", me)
    app.router.add_get("/", me)
    app.router.add_get("/usage", usage)
    app.router.add_get("/provider-keys", list_provider_keys)
    app.router.add_get("/provider-keys/{provider}", get_key)
    app.router.add_put("/provider-keys/{provider}", put_key)
    app.router.add_delete("/provider-keys/{provider}", delete_key)
    app.router.add_post("/estimate", estimate_cost)
    return app
