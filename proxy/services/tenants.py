"""Tenants: the ones known from YAML, the API and keys, and their settings (budget, limits, alerts) set at
run time over the YAML values. A tenant's own provider keys are :mod:`proxy.services.provider_keys`."""

from __future__ import annotations

from pydantic import BaseModel

from proxy.config import AlertsConfig, BudgetConfig, LimitsConfig
from proxy.errors import NotFound
from proxy.gateway import Gateway
from proxy.services import refresh
from proxy.services.keys import StrictBody, api_keys
from proxy.tenancy.documents import TENANTS, TenantDoc, effective_tenant, load


class TenantUpdate(StrictBody):
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


async def tenant_info(gw: Gateway, name: str) -> dict[str, object] | None:
    """A tenant's effective settings, or None when nothing names it."""
    doc = await load(gw.store, TENANTS, name, TenantDoc)
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


async def list_tenants(gw: Gateway, *, cursor: str, count: int) -> dict[str, object]:
    """One page of tenants by name, after ``cursor``."""
    names = set(gw.snapshot.settings.tenants) | set(await gw.store.list_docs(TENANTS))
    names |= {k.tenant for k in gw.snapshot.settings.keys} | {
        d.tenant for d in (await api_keys(gw.store)).values()
    }
    ordered = sorted(n for n in names if n > cursor)
    rows = [row for n in ordered[:count] if (row := await tenant_info(gw, n)) is not None]
    return {"data": rows, "next_cursor": ordered[count - 1] if len(ordered) > count else None}


async def get_tenant(gw: Gateway, name: str) -> dict[str, object]:
    row = await tenant_info(gw, name)
    if row is None:
        raise NotFound(f"No tenant '{name}'.")
    return row


async def put_tenant(gw: Gateway, name: str, body: TenantUpdate) -> dict[str, object] | None:
    """Set the tenant's run-time settings (fields left out keep the YAML value); its effective settings."""
    doc = TenantDoc(budget=body.budget, limits=body.limits, alerts=body.alerts)
    await gw.store.put_doc(TENANTS, name, doc.model_dump_json().encode())
    await refresh(gw)
    return await tenant_info(gw, name)
