"""Virtual keys at run time: ``POST|GET /admin/keys``, ``GET|PATCH|DELETE /admin/keys/{id}``.

The logic is :mod:`proxy.services.keys`; a created key's secret is in the ``POST`` answer only.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_response, limit, read_model
from proxy.services import keys, refresh
from proxy.services.keys import CreatedKey, KeyCreate, KeyInfo, KeyPage, KeyUpdate, Revoked


@operation(
    "Create a virtual key (the secret is shown in this answer only)",
    body=KeyCreate,
    response=CreatedKey,
    status=201,
    tag="keys",
)
async def create(request: web.Request) -> web.Response:
    body = await read_model(request, KeyCreate)
    gw = gateway(request)
    created = await keys.create_key(gw.store, gw.snapshot, body)
    await refresh(gw)
    return json_response(created, status=201)


@operation(
    "Virtual keys from YAML and the API, by id",
    response=KeyPage,
    query=(
        ("tenant", "string", "only this tenant's keys"),
        ("limit", "integer", "1..1000, default 100"),
        ("cursor", "string", "next_cursor of the previous page"),
    ),
    tag="keys",
)
async def list_keys(request: web.Request) -> web.Response:
    count = limit(request.query)
    cursor = request.query.get("cursor") or ""
    tenant = request.query.get("tenant") or None
    return json_response(await keys.list_keys(gateway(request), tenant=tenant, cursor=cursor, count=count))


@operation("One virtual key (never its secret)", response=KeyInfo, tag="keys")
async def get_key(request: web.Request) -> web.Response:
    return json_response(await keys.get_key(gateway(request), request.match_info["id"]))


@operation("Change a key's models, limits or budget", body=KeyUpdate, response=KeyInfo, tag="keys")
async def update(request: web.Request) -> web.Response:
    gw = gateway(request)
    doc = await keys.load_key(gw, request.match_info["id"])  # an unknown key is a 404 before a bad body
    body = await read_model(request, KeyUpdate)
    return json_response(await keys.update_key(gw, doc, body))


@operation("Revoke a key (effective on every replica within 1 s)", response=Revoked, tag="keys")
async def revoke(request: web.Request) -> web.Response:
    return json_response(await keys.revoke_key(gateway(request), request.match_info["id"]))


def register(router: web.UrlDispatcher) -> None:
    router.add_post("/keys", create)
    router.add_get("/keys", list_keys)
    router.add_get("/keys/{id}", get_key)
    router.add_patch("/keys/{id}", update)
    router.add_delete("/keys/{id}", revoke)
