"""Provider adoption, from the ledger: per provider, how many tenants and keys sent traffic through it and
how many requests, and the share of all requests that went through aggregators against direct providers.
A tenant counts once per provider however many keys it used."""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel

from proxy.gateway import Gateway
from proxy.services.analytics import read_records
from proxy.store.records import RecordQuery


class ProviderAdoption(BaseModel):
    provider: str
    type: str
    tenants: int
    keys: int
    requests: int
    share: float  # of all requests in the range
    cost_micro_usd: int


class TypeShare(BaseModel):
    type: str
    providers: int
    tenants: int
    requests: int
    share: float


class AdoptionReport(BaseModel):
    since: float | None
    until: float | None
    requests: int
    tenants: int
    data: list[ProviderAdoption]
    types: list[TypeShare]
    truncated: bool


async def adoption(gw: Gateway, query: RecordQuery) -> dict[str, object]:
    """The report over the records ``query`` matches (``GET /admin/adoption``)."""
    records, truncated = await read_records(gw, query)
    providers = gw.snapshot.providers
    kind = {name: p.provider_type.value for name, p in providers.items()}
    tenants: dict[str, set[str]] = defaultdict(set)
    keys: dict[str, set[tuple[str, str]]] = defaultdict(set)
    requests: dict[str, int] = defaultdict(int)
    cost: dict[str, int] = defaultdict(int)
    for r in records:
        tenants[r.provider].add(r.tenant)
        keys[r.provider].add((r.tenant, r.key))
        requests[r.provider] += 1
        cost[r.provider] += r.cost_micro_usd
    total = len(records)
    data = [
        ProviderAdoption(
            provider=name,
            type=kind.get(name, "unknown"),
            tenants=len(tenants[name]),
            keys=len(keys[name]),
            requests=requests[name],
            share=requests[name] / total if total else 0.0,
            cost_micro_usd=cost[name],
        )
        for name in sorted(set(requests) | set(providers))
    ]
    types = []
    for t in ("aggregator", "direct"):
        mine = [d for d in data if d.type == t]
        n = sum(d.requests for d in mine)
        types.append(
            TypeShare(
                type=t,
                providers=sum(1 for d in mine if d.requests),
                tenants=len(set().union(*(tenants[d.provider] for d in mine))) if mine else 0,
                requests=n,
                share=n / total if total else 0.0,
            )
        )
    every_tenant = {r.tenant for r in records}
    return AdoptionReport(
        since=query.since,
        until=query.until,
        requests=total,
        tenants=len(every_tenant),
        data=data,
        types=types,
        truncated=truncated,
    ).model_dump()
