"""The dashboard's first screen in one answer: the ledger read once for a time range and grouped several
ways (per provider, per model, over time).

The groups are computed by the very functions that answer ``GET /admin/usage``
(:func:`proxy.services.analytics.report` and ``summarize``), so the dashboard's numbers equal the API's by
construction.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from proxy.gateway import Gateway
from proxy.ledger import PostgresLedger, reports
from proxy.services.analytics import ERRORS, read_records, report, summarize
from proxy.store.records import RecordQuery, UsageRecord

# Big pages: the memory store scans its ledger from the start for each page, so fewer pages are faster.
PAGE = 20_000


STEPS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)  # seconds per point of the time series
MAX_POINTS = 120


def bucket_size(
    since: float | None, until: float | None, records: list[UsageRecord], earliest: float | None = None
) -> int:
    """Seconds per point of the time series: the smallest step that covers the range in at most
    ``MAX_POINTS`` points (1 h: minutes; 24 h: quarter hours; 7 and 30 d: six hours; longer: days)."""
    first = min((r.started_at for r in records), default=time.time())
    start = since if since is not None else min(first, earliest if earliest is not None else first)
    end = until if until is not None else time.time()
    span = max(end - start, 1.0)
    return next((s for s in STEPS if span / s <= MAX_POINTS), STEPS[-1])


def series(
    records: list[UsageRecord],
    step: int,
    rejected: Sequence[tuple[int, int, int]] = (),
    since: float | None = None,
    until: float | None = None,
) -> list[dict[str, object]]:
    """Requests, errors (ledger errors and gateway rejections), tokens and cost per time bucket, every
    bucket of the range present (zeros included) so that a chart's time axis spans the range."""
    buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for r in records:
        b = buckets[int(r.started_at // step * step)]
        b[0] += 1
        b[1] += r.prompt_tokens
        b[2] += r.completion_tokens
        b[3] += r.cost_micro_usd
        b[4] += r.outcome in ERRORS
    for at, _status, count in rejected:
        buckets[int(at // step * step)][5] += count
    if buckets or since is not None:
        first = int((since if since is not None else min(buckets)) // step * step)
        last = int(((until if until is not None else time.time()) - 1e-6) // step * step)
        for at in range(first, max(last, first) + step, step):
            buckets.setdefault(at, [0, 0, 0, 0, 0, 0])
    return [
        {
            "at": at,
            "requests": n,
            "prompt_tokens": p,
            "completion_tokens": c,
            "cost_micro_usd": cost,
            "errors": errors,
            "rejected": rej,
        }
        for at, (n, p, c, cost, errors, rej) in sorted(buckets.items())
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
    # Refusals before admission have no key or tenant on record: only the unfiltered (operator) view has them.
    rejected = [] if filters else list(gw.rejections.between(since, until))
    step = bucket_size(since, until, records, min((r[0] for r in rejected), default=None))
    by_status: dict[str, int] = defaultdict(int)
    for _at, status, count in rejected:
        by_status[str(status)] += count
    return {
        "since": since,
        "until": until,
        "filters": filters,
        "totals": by_provider["totals"],
        "providers": by_provider["data"],
        "models": model_groups(records),
        "cost_breakdown": by_provider["cost_breakdown"],
        "popular_models": by_provider["popular_models"],
        "rejected": {"total": sum(by_status.values()), "by_status": dict(sorted(by_status.items()))},
        "step": step,
        "series": series(records, step, rejected, since, until),
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
