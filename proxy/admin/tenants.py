"""Tenants and their own provider keys (BYOK).

    GET  /admin/tenants                                          tenants from YAML, the API and keys
    GET|PUT /admin/tenants/{tenant}                              budget, limits, alerts (merged over YAML)
    PUT|GET|DELETE /admin/tenants/{tenant}/provider-keys/{provider}
    POST /admin/tenants/{tenant}/provider-keys/{provider}/validate

A provider key goes into the vault (``proxy.tenancy.vault``) and is never answered back: GET shows when it was
set, whether it validated and the id of the master key that seals it. The provider-key functions here
are shared with the self-service API (``/me/provider-keys``), which calls them for the caller's tenant.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from pydantic import BaseModel, Field

from proxy.admin.common import gateway, json_response, limit, operation
from proxy.admin.keys import _Body, api_keys, read_model, refresh
from proxy.config import AlertsConfig, BudgetConfig, LimitsConfig
from proxy.errors import GatewayError, InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.tenancy.documents import (
    API_WRITER,
    LOCK_TTL,
    NAME,
    PROVIDER_KEYS,
    RELEASE,
    TENANTS,
    ProviderKeyDoc,
    TenantDoc,
    effective_tenant,
    lock_name,
    parse,
    provider_key_id,
)
from proxy.tenancy.vault import Vault, VaultNotConfigured

VALIDATE_TIMEOUT = 10.0


class VaultBusy(GatewayError):
    status = 503
    type = "server_error"
    code = "vault_busy"


class TenantUpdate(_Body):
    budget: BudgetConfig | None = None
    limits: LimitsConfig | None = None
    alerts: AlertsConfig | None = None


class TenantInfo(BaseModel):
    name: str
    budget: BudgetConfig | None
    limits: LimitsConfig
    alerts: AlertsConfig
    source: list[str]  # where its settings come from: "yaml", "api"
    provider_keys: list[str]  # providers this tenant has its own key for


class TenantPage(BaseModel):
    data: list[TenantInfo]
    next_cursor: str | None


class ProviderKeyPut(_Body):
    api_key: str = Field(min_length=1, max_length=4096)
    validate_key: bool = Field(default=False, alias="validate")


class ProviderKeyInfo(BaseModel):
    tenant: str
    provider: str
    kid: str  # the master key that seals it (see proxy.tenancy.vault)
    created_at: float
    updated_at: float
    validated: bool | None
    validated_at: float | None


class Validation(BaseModel):
    tenant: str
    provider: str
    valid: bool | None  # None: the provider could not say (unreachable, or an error other than 401/403)
    error: str | None


class Deleted(BaseModel):
    deleted: bool


# -- tenants --------------------------------------------------------------------------------------------


async def tenant_info(gw: Gateway, name: str) -> dict[str, object] | None:
    raw = await gw.store.get_doc(TENANTS, name)
    doc = parse(TenantDoc, name, raw) if raw is not None else None
    yaml = name in gw.snapshot.settings.tenants
    owned = [p for (t, p) in gw.snapshot.tenant_provider_keys if t == name]
    if doc is None and not yaml and not owned and not await _has_keys(gw, name):
        return None
    config = effective_tenant(gw.snapshot, name, doc)
    source = (["yaml"] if yaml else []) + (["api"] if doc is not None else [])
    return TenantInfo(
        name=name,
        budget=config.budget,
        limits=config.limits,
        alerts=config.alerts,
        source=source,
        provider_keys=sorted(owned),
    ).model_dump(mode="json")


async def _has_keys(gw: Gateway, tenant: str) -> bool:
    if any(k.tenant == tenant for k in gw.snapshot.settings.keys):
        return True
    return any(d.tenant == tenant for d in (await api_keys(gw.store)).values())


@operation(
    "Tenants known from YAML, the API and keys",
    response=TenantPage,
    query=(("limit", "integer", "1..1000, default 100"), ("cursor", "string", "next_cursor")),
    tag="tenants",
)
async def list_tenants(request: web.Request) -> web.Response:
    gw = gateway(request)
    count = limit(request.query)
    cursor = request.query.get("cursor") or ""
    names = set(gw.snapshot.settings.tenants) | set(await gw.store.list_docs(TENANTS))
    names |= {k.tenant for k in gw.snapshot.settings.keys} | {
        d.tenant for d in (await api_keys(gw.store)).values()
    }
    ordered = sorted(n for n in names if n > cursor)
    rows = [row for n in ordered[:count] if (row := await tenant_info(gw, n)) is not None]
    return json_response({"data": rows, "next_cursor": ordered[count - 1] if len(ordered) > count else None})


@operation("A tenant's effective settings", response=TenantInfo, tag="tenants")
async def get_tenant(request: web.Request) -> web.Response:
    name = request.match_info["tenant"]
    row = await tenant_info(gateway(request), name)
    if row is None:
        raise NotFound(f"No tenant '{name}'.")
    return json_response(row)


@operation(
    "Set a tenant's budget, limits and alerts (fields left out keep the YAML value)",
    body=TenantUpdate,
    response=TenantInfo,
    tag="tenants",
)
async def put_tenant(request: web.Request) -> web.Response:
    gw = gateway(request)
    name = _name(request.match_info["tenant"], "tenant")
    body = await read_model(request, TenantUpdate)
    doc = TenantDoc(budget=body.budget, limits=body.limits, alerts=body.alerts)
    await gw.store.put_doc(TENANTS, name, doc.model_dump_json().encode())
    await refresh(gw)
    return json_response(await tenant_info(gw, name))


# -- provider keys: shared with /me -------------------------------------------------------------------


def _name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise InvalidRequest(f"Invalid {what} name.", param=what)
    return value


def provider_of(gw: Gateway, provider: str) -> str:
    config = gw.snapshot.settings.providers.get(provider)
    if config is None or provider not in gw.snapshot.providers:
        raise NotFound(f"No provider '{provider}'.")
    if config.byok == "never":
        raise InvalidRequest(f"The provider '{provider}' does not take tenants' own keys (byok: never).")
    return provider


async def validate_with(gw: Gateway, provider: str, api_key: str) -> tuple[bool | None, str | None]:
    """Ask the provider (a cheap authenticated call). The key never appears in the error text."""
    instance = gw.snapshot.providers[provider]
    try:
        async with asyncio.timeout(VALIDATE_TIMEOUT):
            return await instance.validate_key(gw.http, api_key), None
    except NotImplementedError:
        return None, "this provider's plugin cannot validate keys"
    except Exception as exc:  # network errors, 5xx, plugin failures: the validity is unknown
        return None, f"the provider could not be asked ({type(exc).__name__})"


async def _locked(gw: Gateway, tenant: str, provider: str) -> None:
    # Wait out a rewrap holding this key (it holds the lock for one read-modify-write).
    for _ in range(int(LOCK_TTL / 0.05) + 1):
        if await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, LOCK_TTL):
            return
        await asyncio.sleep(0.05)
    raise VaultBusy("The vault is being rewrapped; retry shortly.", retry_after=1.0)


async def put_provider_key(
    gw: Gateway, tenant: str, provider: str, body: ProviderKeyPut
) -> dict[str, object]:
    provider_of(gw, provider)
    validated: bool | None = None
    validated_at: float | None = None
    if body.validate_key:
        validated, error = await validate_with(gw, provider, body.api_key)
        validated_at = time.time()
        if validated is False:
            raise InvalidRequest(f"The provider '{provider}' refused this key; it was not stored.")
        if validated is None:
            raise InvalidRequest(f"The key could not be validated ({error}); it was not stored.")
    vault = Vault.from_settings(gw.snapshot.settings)
    try:
        sealed = vault.seal(tenant, provider, body.api_key)
    except VaultNotConfigured:
        raise InvalidRequest("The vault is not configured: set secrets.master_keys first.") from None
    doc_id = provider_key_id(tenant, provider)
    await _locked(gw, tenant, provider)
    raw = await gw.store.get_doc(PROVIDER_KEYS, doc_id)
    old = parse(ProviderKeyDoc, doc_id, raw) if raw is not None else None
    doc = ProviderKeyDoc.of(
        sealed, old.created_at if old else None, validated=validated, validated_at=validated_at
    )
    await gw.store.put_doc(PROVIDER_KEYS, doc_id, doc.model_dump_json().encode())
    await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, RELEASE)
    await refresh(gw)
    return key_info(tenant, provider, doc)


def key_info(tenant: str, provider: str, doc: ProviderKeyDoc) -> dict[str, object]:
    return ProviderKeyInfo(tenant=tenant, provider=provider, **doc.model_dump(exclude={"blob"})).model_dump()


async def get_provider_key(gw: Gateway, tenant: str, provider: str) -> ProviderKeyDoc:
    doc_id = provider_key_id(tenant, provider)
    raw = await gw.store.get_doc(PROVIDER_KEYS, doc_id)
    doc = parse(ProviderKeyDoc, doc_id, raw) if raw is not None else None
    if doc is None:
        raise NotFound(f"No key of tenant '{tenant}' for provider '{provider}'.")
    return doc


async def delete_provider_key(gw: Gateway, tenant: str, provider: str) -> None:
    await _locked(gw, tenant, provider)
    existed = await gw.store.delete_doc(PROVIDER_KEYS, provider_key_id(tenant, provider))
    await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, RELEASE)
    if not existed:
        raise NotFound(f"No key of tenant '{tenant}' for provider '{provider}'.")
    await refresh(gw)


async def validate_stored(gw: Gateway, tenant: str, provider: str) -> dict[str, object]:
    doc = await get_provider_key(gw, tenant, provider)
    provider_of(gw, provider)
    secret = gw.snapshot.tenant_provider_keys.get((tenant, provider))
    if secret is None:  # stored but not decryptable here (a master key missing from the config)
        return Validation(
            tenant=tenant, provider=provider, valid=None, error="the key cannot be decrypted"
        ).model_dump()
    valid, error = await validate_with(gw, provider, secret)
    if valid is not None:
        await _locked(gw, tenant, provider)
        doc = await get_provider_key(gw, tenant, provider)  # re-read under the lock: a rewrap may have run
        doc = doc.model_copy(update={"validated": valid, "validated_at": time.time()})
        await gw.store.put_doc(
            PROVIDER_KEYS, provider_key_id(tenant, provider), doc.model_dump_json().encode()
        )
        await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, RELEASE)
    return Validation(tenant=tenant, provider=provider, valid=valid, error=error).model_dump()


# -- admin handlers for provider keys -------------------------------------------------------------------


def _target(request: web.Request) -> tuple[str, str]:
    return _name(request.match_info["tenant"], "tenant"), request.match_info["provider"]


@operation(
    "Store a tenant's own key for a provider (encrypted; optionally validated first)",
    body=ProviderKeyPut,
    response=ProviderKeyInfo,
    tag="tenants",
)
async def put_key(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    body = await read_model(request, ProviderKeyPut)
    return json_response(await put_provider_key(gateway(request), tenant, provider, body))


@operation(
    "A tenant's provider key: metadata and master key id, never the key",
    response=ProviderKeyInfo,
    tag="tenants",
)
async def get_key(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    return json_response(
        key_info(tenant, provider, await get_provider_key(gateway(request), tenant, provider))
    )


@operation("Delete a tenant's provider key", response=Deleted, tag="tenants")
async def delete_key(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    await delete_provider_key(gateway(request), tenant, provider)
    return json_response({"deleted": True})


@operation("Check a tenant's stored provider key against the provider", response=Validation, tag="tenants")
async def validate(request: web.Request) -> web.Response:
    tenant, provider = _target(request)
    return json_response(await validate_stored(gateway(request), tenant, provider))


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/tenants", list_tenants)
    router.add_get("/tenants/{tenant}", get_tenant)
    router.add_put("/tenants/{tenant}", put_tenant)
    keys = "/tenants/{tenant}/provider-keys/{provider}"
    router.add_put(keys, put_key)
    router.add_get(keys, get_key)
    router.add_delete(keys, delete_key)
    router.add_post(keys + "/validate", validate)
