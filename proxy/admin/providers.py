"""Providers: ``GET /admin/providers``, ``GET|PATCH|DELETE /admin/providers/{name}``,
``POST /admin/providers/{name}/sync``.

A PATCH lays fields over the YAML provider (``{"enabled": false}`` is the rollback switch) or adds a
provider (``plugin`` given); DELETE drops the run-time fields. The logic is :mod:`proxy.services.providers`.
"""

from __future__ import annotations

import time

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_body, json_response, number
from proxy.services import providers
from proxy.services.providers import ProviderList, ProviderModel, ProviderPatch, SyncReport


@operation(
    "Providers with model count, sync status and usage totals",
    response=ProviderList,
    query=(("since", "number", "usage from this unix time (default: 30 days ago)"),),
    tag="providers",
)
async def list_providers(request: web.Request) -> web.Response:
    since = number(request.query, "since") or time.time() - 30 * 86400
    return json_response(await providers.list_providers(gateway(request), since))


@operation("One provider", response=ProviderModel, tag="providers")
async def get_provider(request: web.Request) -> web.Response:
    return json_response(await providers.get_provider(gateway(request), request.match_info["name"]))


@operation(
    "Update, disable or add a provider at run time (fields laid over the YAML)",
    body=ProviderPatch,
    response=ProviderModel,
    tag="providers",
)
async def patch_provider(request: web.Request) -> web.Response:
    body = await json_body(request)
    return json_response(await providers.patch_provider(gateway(request), request.match_info["name"], body))


@operation(
    "Drop a provider's run-time fields (the YAML provider serves as written)", tag="providers", status=204
)
async def delete_provider(request: web.Request) -> web.Response:
    await providers.drop_override(gateway(request), request.match_info["name"])
    return web.Response(status=204)


@operation("Sync the provider's model catalogue now", response=SyncReport, tag="providers")
async def sync_now(request: web.Request) -> web.Response:
    return json_response(await providers.sync_now(gateway(request), request.match_info["name"]))


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/providers", list_providers)
    router.add_get("/providers/{name}", get_provider)
    router.add_patch("/providers/{name}", patch_provider)
    router.add_delete("/providers/{name}", delete_provider)
    router.add_post("/providers/{name}/sync", sync_now)
