"""Spend against budget: what ``GET /me`` shows a key of itself and its tenant, and the dashboard's
table of every budget. A store that does not answer raises StoreUnavailable (each front end says so in
its own way)."""

from __future__ import annotations

import time

from proxy.gateway import Gateway
from proxy.state.snapshot import Snapshot
from proxy.store.base import Scope
from proxy.tenancy.keys import VirtualKey

DEFAULT_ALERT_AT = (0.5, 0.8, 1.0)  # a key's thresholds when its tenant sets none


def key_scope(snapshot: Snapshot, key: VirtualKey) -> Scope:
    tenant = snapshot.tenant_scope(key.tenant)
    return key.scope(tenant.alert_at if tenant else DEFAULT_ALERT_AT)


async def remaining(gw: Gateway, scope: Scope) -> dict[str, object] | None:
    """The scope's budget, spent, reserved and remaining in this period; None without a budget."""
    if scope.budget_micro_usd is None:
        return None
    spend = await gw.store.spend(scope, time.time())
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


async def caller(gw: Gateway, key: VirtualKey) -> dict[str, object]:
    """The body of ``GET /me``: the key, its tenant, their limits and budgets."""
    tenant = gw.snapshot.tenant_scope(key.tenant)
    return {
        "key": {
            "id": key.id,
            "name": key.name,
            "models": list(key.models),
            "limits": {"rpm": key.rpm, "tpm": key.tpm},
            "budget": await remaining(gw, key_scope(gw.snapshot, key)),
        },
        "tenant": {
            "name": key.tenant,
            "limits": {"rpm": tenant.rpm if tenant else None, "tpm": tenant.tpm if tenant else None},
            "budget": await remaining(gw, tenant) if tenant else None,
        },
    }


async def _row(gw: Gateway, scope: Scope, now: float) -> dict[str, object]:
    spend = await gw.store.spend(scope, now)
    return {
        "scope": scope.kind,
        "name": scope.name,
        "tenant": scope.tenant,
        "period": scope.period.value,
        "budget_micro_usd": scope.budget_micro_usd,
        "spent_micro_usd": spend.spent_micro_usd,
        "reserved_micro_usd": spend.reserved_micro_usd,
        "alert_at": list(scope.alert_at),
    }


async def table(gw: Gateway, *, tenant: str | None, key: str | None) -> list[dict[str, object]]:
    """Spend against budget of every tenant and key with a budget (tenants first, then keys by name),
    narrowed to one tenant and/or one key name."""
    snapshot, now = gw.snapshot, time.time()
    tenants = [s for name, s in sorted(snapshot.tenant_scopes.items()) if s.budget_micro_usd is not None]
    keys = [k for k in snapshot.keys.virtual_keys() if k.budget_micro_usd is not None]
    if tenant is not None:
        tenants = [s for s in tenants if s.name == tenant]
        keys = [k for k in keys if k.tenant == tenant]
    if key is not None:
        keys = [k for k in keys if k.name == key]
    rows = [await _row(gw, s, now) for s in tenants]
    for k in sorted(keys, key=lambda k: k.name):
        rows.append(await _row(gw, key_scope(snapshot, k), now))
    return rows
