"""Reports computed from the ledger and the price table: usage per group, one model across providers.

Reports read ``store.records()`` page by page (at most ``MAX_RECORDS`` records, then ``truncated``), so
they work the same on both stores. Latency percentiles are nearest-rank over the records read. Shared by
the admin API (``/admin/usage``, ``/admin/compare``) and the dashboard's overview.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable

from pydantic import BaseModel

from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.ledger import reports
from proxy.store.records import Outcome, RecordQuery, UsageRecord

MAX_RECORDS = 200_000
PAGE = 5000  # internal pages: fewer store round trips than the public API's 1000
ERRORS = (Outcome.UPSTREAM_ERROR, Outcome.REJECTED)

GROUPS: dict[str, Callable[[UsageRecord], str]] = {
    "day": lambda r: time.strftime("%Y-%m-%d", time.gmtime(r.started_at)),
    "model": lambda r: r.model,
    "provider": lambda r: r.provider,
    "key": lambda r: r.key,
    "tenant": lambda r: r.tenant,
}


class Group(BaseModel):
    group: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_micro_usd: int
    latency_p50_ms: int | None
    latency_p95_ms: int | None


class CostShare(BaseModel):
    provider: str
    model: str
    cost_micro_usd: int
    requests: int


class Popularity(BaseModel):
    model: str
    requests: int


class UsageReport(BaseModel):
    group_by: str
    since: float | None
    until: float | None
    data: list[Group]
    totals: Group
    cost_breakdown: list[CostShare]
    popular_models: list[Popularity]
    truncated: bool


class ProviderPrice(BaseModel):
    input: float
    output: float
    cached_input: float


class ProviderComparison(BaseModel):
    provider: str
    upstream_model: str | None
    price: ProviderPrice | None
    routed: bool
    requests: int
    error_rate: float | None
    latency_p50_ms: int | None
    latency_p95_ms: int | None


class Comparison(BaseModel):
    model: str
    data: list[ProviderComparison]


async def records_page(gw: Gateway, query: RecordQuery) -> dict[str, object]:
    """One page of ledger records as JSON (the body of ``GET /admin/usage/records`` and ``/me/usage``);
    from PostgreSQL when the ledger is there."""
    if gw.ledger is not None:
        return await reports.records_page(gw.ledger, query)
    page = await gw.store.records(query)
    return {"data": [dataclasses.asdict(r) for r in page.data], "next_cursor": page.next_cursor}


async def read_records(
    gw: Gateway, query: RecordQuery, page_size: int = PAGE
) -> tuple[list[UsageRecord], bool]:
    """Every record the query matches, up to ``MAX_RECORDS`` (then ``True``: truncated)."""
    out: list[UsageRecord] = []
    cursor: str | None = None
    while True:
        page = await gw.store.records(
            RecordQuery(
                key=query.key,
                tenant=query.tenant,
                since=query.since,
                until=query.until,
                limit=page_size,
                cursor=cursor,
            )
        )
        out += page.data
        cursor = page.next_cursor
        if cursor is None:
            return out, False
        if len(out) >= MAX_RECORDS:
            return out, True


def percentile(sorted_values: list[int], share: float) -> int | None:
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * share // 1))  # nearest rank: ceil(n * share)
    return sorted_values[int(rank) - 1]


def summarize(name: str, records: list[UsageRecord]) -> Group:
    latencies = sorted(r.latency_ms for r in records)
    return Group(
        group=name,
        requests=len(records),
        errors=sum(1 for r in records if r.outcome in ERRORS),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=sum(r.completion_tokens for r in records),
        cached_tokens=sum(r.cached_tokens for r in records),
        cost_micro_usd=sum(r.cost_micro_usd for r in records),
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
    )


def report(records: list[UsageRecord], group_by: str) -> dict[str, object]:
    """The body of ``GET /admin/usage`` without the query echo (shared with the dashboard)."""
    groups: dict[str, list[UsageRecord]] = defaultdict(list)
    costs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    popular: dict[str, int] = defaultdict(int)
    for r in records:
        groups[GROUPS[group_by](r)].append(r)
        slot = costs[(r.provider, r.model)]
        slot[0] += r.cost_micro_usd
        slot[1] += 1
        popular[r.model] += 1
    breakdown = sorted(costs.items(), key=lambda kv: -kv[1][0])
    return {
        "data": [summarize(name, rs).model_dump() for name, rs in sorted(groups.items())],
        "totals": summarize("total", records).model_dump(),
        "cost_breakdown": [
            CostShare(provider=p, model=m, cost_micro_usd=c, requests=n).model_dump()
            for (p, m), (c, n) in breakdown
        ],
        "popular_models": [
            {"model": m, "requests": n} for m, n in sorted(popular.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def group_by_of(value: str | None) -> str:
    """The grouping asked for (default ``day``); an unknown one is refused."""
    group_by = value or "day"
    if group_by not in GROUPS:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUPS)}.", param="group_by")
    return group_by


async def usage(gw: Gateway, group_by: str, query: RecordQuery) -> dict[str, object]:
    """The body of ``GET /admin/usage``: totals per group over the records ``query`` matches (computed
    by PostgreSQL when the ledger is there)."""
    if gw.ledger is not None:
        return await reports.usage(gw.ledger, group_by, query)
    records, truncated = await read_records(gw, query)
    body = {"group_by": group_by, "since": query.since, "until": query.until, **report(records, group_by)}
    return {**body, "truncated": truncated}


async def compare(gw: Gateway, model: str, since: float | None) -> dict[str, object]:
    """One model across the providers that serve it or served it: price, latency, error rate.
    ``since``: records from then on (default: the last 7 days)."""
    records, _ = await read_records(
        gw, RecordQuery(since=since if since is not None else time.time() - 7 * 86400)
    )
    observed: dict[str, list[UsageRecord]] = defaultdict(list)
    for r in records:
        if r.model == model or r.upstream_model == model:
            observed[r.provider].append(r)
    snapshot = gw.snapshot
    resolution = snapshot.resolve(model)
    upstream: dict[str, str | None] = {c.provider: c.model for c in resolution.choices} if resolution else {}
    rows = []
    for provider in sorted(set(upstream) | set(observed)):
        mine = observed.get(provider, [])
        upstream_model = upstream.get(provider) or (mine[-1].upstream_model if mine else None)
        price = snapshot.price(provider, upstream_model) if upstream_model else None
        latencies = sorted(r.latency_ms for r in mine if r.outcome not in ERRORS)
        rows.append(
            ProviderComparison(
                provider=provider,
                upstream_model=upstream_model,
                price=ProviderPrice(**price.usd_per_million()) if price else None,
                routed=provider in upstream,
                requests=len(mine),
                error_rate=(sum(1 for r in mine if r.outcome in ERRORS) / len(mine)) if mine else None,
                latency_p50_ms=percentile(latencies, 0.5),
                latency_p95_ms=percentile(latencies, 0.95),
            ).model_dump()
        )
    if not rows:
        raise NotFound(f"The model '{model}' is neither routable nor in the ledger.")
    return {"model": model, "data": rows}
