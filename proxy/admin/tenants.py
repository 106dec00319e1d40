"""Tenants and their own provider keys (BYOK).

    GET  /admin/tenants                                          tenants from YAML, the API and keys
    GET|PUT /admin/tenants/{tenant}                              budget, limits, alerts (merged over YAML)
    PUT|GET|DELETE /admin/tenants/{tenant}/provider-keys/{provider}
    POST /admin/tenants/{tenant}/provider-keys/{provider}/validate

The logic is :mod:`proxy.services.tenants` and :mod:`proxy.services.provider_keys` (which ``/me`` shares);
a provider key is never answered back.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_response, limit, read_model
from proxy.errors import InvalidRequest
from proxy.services import provider_keys, tenants
from proxy.services.provider_keys import Deleted, ProviderKeyInfo, ProviderKeyPut, Validation
from proxy.services.tenants import TenantInfo, TenantPage, TenantUpdate
from proxy.tenancy.documents import NAME


def _name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise InvalidRequest(f"Invalid {what} name.", param=what)
    return value


def _target(request: web.Request) -> tuple[str, str]:
    return _name(request.match_info["tenant"], "tenant"), request.match_info["provider"]


@operation(
    "Tenants known from YAML, the API and keys",
    response=TenantPage,
    query=(("limit", "integer", "1..1000, default 100"), ("cursor", "string", "next_cursor")),
    tag="tenants",
)
async def list_tenants(request: web.Request) -> web.Response:
    count = limit(request.query)
    cursor = request.query.get("cursor") or ""
    return json_response(await tenants.list_tenants(gateway(request), cursor=cursor, count=count))


@operation("A tenant's effective settings", response=TenantInfo, tag="tenants")
async def get_tenant(request: web.Request) -> web.Response:
    return json_response(await tenants.get_tenant(gateway(request), request.match_info["tenant"]))


@operation(
    "Set a tenant's budget, limits and alerts (fields left out keep the YAML value)",
    body=TenantUpdate,
    response=TenantInfo,
    tag="tenants",
)
async def put_tenant(request: web.Request) -> web.Response:
    name = _name(request.match_info["tenant"], "tenant")
    body = await read_model(request, TenantUpdate)
    return json_response(await tenants.put_tenant(gateway(request), name, body))


@operation(
    "Store a tenant's own key for a provider (encrypted; optionally validated first)",
    body=ProviderKeyPut,
    response=ProviderKeyInfo,
    tag="tenants",
)
async def put_key(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    body = await read_model(request, ProviderKeyPut)
    return json_response(await provider_keys.put_provider_key(gateway(request), tenant, provider, body))


@operation(
    "A tenant's provider key: metadata and master key id, never the key",
    response=ProviderKeyInfo,
    tag="tenants",
)
async def get_key(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    return json_response(await provider_keys.provider_key_info(gateway(request), tenant, provider))


@operation("Delete a tenant's provider key", response=Deleted, tag="tenants")
async def delete_key(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    return json_response(await provider_keys.delete_provider_key(gateway(request), tenant, provider))


@operation("Check a tenant's stored provider key against the provider", response=Validation, tag="tenants")
async def validate(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    return json_response(await provider_keys.validate_stored(gateway(request), tenant, provider))


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/tenants", list_tenants)
    router.add_get("/tenants/{tenant}", get_tenant)
    router.add_put("/tenants/{tenant}", put_tenant)
    keys = "/tenants/{tenant}/provider-keys/{provider}"
    router.add_put(keys, put_key)
    router.add_get(keys, get_key)
    router.add_delete(keys, delete_key)
    router.add_post(keys + "/validate", validate)
