"""The dashboard's first screen in one answer: the ledger read once for a time range and grouped several
ways (per provider, per model, over time).

The groups are computed by the very functions that answer ``GET /admin/usage``
(:func:`proxy.services.analytics.report` and ``summarize``), so the dashboard's numbers equal the API's by
construction.
"""

from __future__ import annotations

import time
from collections import defaultdict

from proxy.gateway import Gateway
from proxy.ledger import PostgresLedger, reports
from proxy.services.analytics import read_records, report, summarize
from proxy.store.records import RecordQuery, UsageRecord

# Big pages: the memory store scans its ledger from the start for each page, so fewer pages are faster.
PAGE = 20_000


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


async def overview(
    gw: Gateway, filters: dict[str, str], since: float | None, until: float | None
) -> dict[str, object]:
    """Totals, per provider, per model and over time for the records of ``filters`` (``tenant``, ``key``)
    between ``since`` and ``until``."""
    query = RecordQuery(key=filters.get("key"), tenant=filters.get("tenant"), since=since, until=until)
    started = time.perf_counter()
    if gw.ledger is not None:
        return {**(await from_ledger(gw.ledger, query)), "filters": filters, "elapsed_ms": _ms(started)}
    records, truncated = await read_records(gw, query, page_size=PAGE)
    by_provider = report(records, "provider")
    return {
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
        "elapsed_ms": _ms(started),
    }


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def from_ledger(ledger: PostgresLedger, query: RecordQuery) -> dict[str, object]:
    """The overview computed by PostgreSQL (:mod:`proxy.ledger.reports`): the same groups, in SQL."""
    groups = await reports.by_provider_and_model(ledger, query)
    since, until = query.since, query.until
    start = since if since is not None else await reports.first_record(ledger, query)
    end = until if until is not None else time.time()
    step = 3600 if start is None or end - start <= 2 * 86400 else 86400
    return {
        "since": since,
        "until": until,
        "totals": groups["totals"],
        "providers": groups["providers"],
        "models": groups["models"],
        "cost_breakdown": groups["cost_breakdown"],
        "popular_models": groups["popular_models"],
        "step": step,
        "series": await reports.series(ledger, query, step),
        "truncated": False,
        "records_read": groups["totals"]["requests"],
    }
