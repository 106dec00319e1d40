"""``GET /ui/api/overview`` and ``GET /ui/api/budgets``: what the dashboard's first screen needs, in one
answer each, aggregated on the server.

The overview reads the ledger once for a time range and groups it several ways (per provider, per model,
over time), where the admin API's ``GET /admin/usage`` reads it once per grouping. The groups are computed
by the very functions that answer ``/admin/usage`` (``proxy.admin.analytics.report``/``summarize``), so the
dashboard's numbers equal the API's by construction; the tests check it too.

A tenant session sees only its own key's records (the key and tenant are taken from the session's key,
never from the query), an admin session may narrow by ``tenant`` or ``key``.
"""

from __future__ import annotations

import time
from collections import defaultdict

from aiohttp import web

from proxy.admin.analytics import read_records, report, summarize
from proxy.admin.common import json_response, number
from proxy.gateway import GATEWAY, Gateway
from proxy.store.base import Scope
from proxy.store.records import RecordQuery, UsageRecord
from proxy.ui.bridge import page_session
from proxy.ui.sessions import Session

# Big pages: the memory store scans its ledger from the start for each page, so fewer pages are faster.
PAGE = 20_000


async def caller(request: web.Request) -> tuple[Session, dict[str, str]]:
    """The page's session and the ledger filters it is held to (a tenant: its own key only)."""
    session = await page_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text='{"error": "log in"}', content_type="application/json")
    if session.kind == "admin":
        q = request.query
        return session, {k: q[k] for k in ("tenant", "key") if q.get(k)}
    key = request.config_dict[GATEWAY].snapshot.keys.lookup(session.secret or "")
    if key is None:  # revoked since login
        raise web.HTTPUnauthorized(text='{"error": "key revoked"}', content_type="application/json")
    return session, {"tenant": key.tenant, "key": key.name}


def bucket_size(since: float | None, until: float | None, records: list[UsageRecord]) -> int:
    """Seconds per point of the time series: hours up to two days, days beyond."""
    start = since if since is not None else min((r.started_at for r in records), default=time.time())
    end = until if until is not None else time.time()
    return 3600 if end - start <= 2 * 86400 else 86400


def series(records: list[UsageRecord], step: int) -> list[dict[str, object]]:
    """Requests, tokens and cost per time bucket (plain sums: cheaper than a full summary per bucket)."""
    buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in records:
        b = buckets[int(r.started_at // step * step)]
        b[0] += 1
        b[1] += r.prompt_tokens
        b[2] += r.completion_tokens
        b[3] += r.cost_micro_usd
    return [
        {"at": at, "requests": n, "prompt_tokens": p, "completion_tokens": c, "cost_micro_usd": cost}
        for at, (n, p, c, cost) in sorted(buckets.items())
    ]


def model_groups(records: list[UsageRecord]) -> list[dict[str, object]]:
    """``report(records, "model")["data"]`` without recomputing its breakdowns (same ``summarize``)."""
    groups: dict[str, list[UsageRecord]] = defaultdict(list)
    for r in records:
        groups[r.model].append(r)
    return [summarize(name, rs).model_dump() for name, rs in sorted(groups.items())]


async def overview(request: web.Request) -> web.Response:
    _, filters = await caller(request)
    gw = request.config_dict[GATEWAY]
    since, until = number(request.query, "since"), number(request.query, "until")
    query = RecordQuery(key=filters.get("key"), tenant=filters.get("tenant"), since=since, until=until)
    started = time.perf_counter()
    records, truncated = await read_records(gw, query, page_size=PAGE)
    by_provider = report(records, "provider")
    body = {
        "since": since,
        "until": until,
        "filters": filters,
        "totals": by_provider["totals"],
        "providers": by_provider["data"],
        "models": model_groups(records),
        "cost_breakdown": by_provider["cost_breakdown"],
        "popular_models": by_provider["popular_models"],
        "step": (step := bucket_size(since, until, records)),
        "series": series(records, step),
        "truncated": truncated,
        "records_read": len(records),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return json_response(body)


async def _spend(gw: Gateway, scope: Scope, now: float) -> dict[str, object]:
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


async def budgets(request: web.Request) -> web.Response:
    """Spend against budget for every tenant and key with a budget (a tenant session: its own two)."""
    _, filters = await caller(request)
    gw = request.config_dict[GATEWAY]
    snapshot, now = gw.snapshot, time.time()
    tenants = [s for name, s in sorted(snapshot.tenant_scopes.items()) if s.budget_micro_usd is not None]
    keys = [k for k in snapshot.keys.virtual_keys() if k.budget_micro_usd is not None]
    if "tenant" in filters:
        tenants = [s for s in tenants if s.name == filters["tenant"]]
        keys = [k for k in keys if k.tenant == filters["tenant"]]
    if "key" in filters:
        keys = [k for k in keys if k.name == filters["key"]]
    rows = [await _spend(gw, s, now) for s in tenants]
    for key in sorted(keys, key=lambda k: k.name):
        tenant = snapshot.tenant_scope(key.tenant)
        rows.append(await _spend(gw, key.scope(tenant.alert_at if tenant else (0.5, 0.8, 1.0)), now))
    return json_response({"data": rows})
