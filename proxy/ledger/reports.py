"""The ledger's reports computed by PostgreSQL: the same JSON as :mod:`proxy.services.analytics` computes
from the store's records, with every sum, count and percentile in SQL (nothing is read row by row).

Percentiles are ``percentile_disc``: the nearest rank, as the Python reports compute them. Group names
sort by code point (``COLLATE "C"``), as Python sorts strings.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from proxy.errors import InvalidRequest, MeteringUnavailable
from proxy.ledger.postgres import LedgerUnavailable, PostgresLedger
from proxy.ledger.rows import SELECT, UTC, record_of, timestamp
from proxy.store.records import RecordQuery

# What a record is grouped by (cheap per row), and the group's name made of it (once per group).
GROUP_SQL = {
    "day": "date_bin('1 day', started_at, timestamptz 'epoch')",  # UTC days (cheaper per row than a cast)
    "model": "model",
    "provider": "provider",
    "key": "key",
    "tenant": "tenant",
}
GROUP_NAME = {"day": "(g AT TIME ZONE 'UTC')::date"}  # once per histogram row; as text: YYYY-MM-DD
REPORT_TIMEOUT = 120.0  # seconds: a report over months of records may scan millions of rows
WORK_MEM = "256MB"  # per report statement: the histograms stay in memory (the default 4MB spills to disk)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
_ERRORS = "outcome IN ('upstream_error', 'rejected')"
_GROUP_FIELDS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micro_usd",
    "latency_p50_ms",
    "latency_p95_ms",
)


def where(query: RecordQuery, args: list[Any]) -> str:
    """The WHERE clause of ``query``'s filters, its parameters appended to ``args``."""
    clauses = ["TRUE"]
    if query.request_id is not None:
        args.append(query.request_id)
        clauses.append(f"(request_id = ${len(args)} OR client_request_id = ${len(args)})")
    for column in ("key", "tenant"):
        value = getattr(query, column)
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if query.since is not None:
        args.append(timestamp(_finite(query.since, "since")))
        clauses.append(f"started_at >= ${len(args)}")
    if query.until is not None:
        args.append(timestamp(_finite(query.until, "until")))
        clauses.append(f"started_at < ${len(args)}")
    return " AND ".join(clauses)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value) or not -1e11 < value < 1e11:
        raise InvalidRequest(f"'{name}' must be unix seconds.", param=name)
    return value


def _group(name: str, row: Any) -> dict[str, Any]:
    return {"group": name, **{f: row[f] for f in _GROUP_FIELDS}}


async def _fetch(ledger: PostgresLedger, sql: str, args: list[Any]) -> list[Any]:
    try:
        async with ledger.connection() as conn, conn.transaction(readonly=True):
            # A report's histogram holds up to (groups x latency buckets) rows: in memory, not on disk.
            await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            await conn.execute("SET LOCAL DateStyle = 'ISO'")  # a day's name: its date as text, YYYY-MM-DD
            return list(await conn.fetch(sql, *args, timeout=REPORT_TIMEOUT))
    except LedgerUnavailable:
        raise MeteringUnavailable(
            "The ledger database does not answer; retry shortly.", retry_after=1.0
        ) from None


# Latency to three significant digits (exact below 1 s): the histogram's buckets, so that a report's
# percentiles cost one hash aggregate however many distinct latencies there are. A percentile is the
# bucket's lower bound: exact below 1000 ms, within 1% above.
BUCKET = (
    "CASE WHEN latency_ms < 1000 THEN latency_ms WHEN latency_ms < 10000 THEN latency_ms / 10 * 10 "
    "WHEN latency_ms < 100000 THEN latency_ms / 100 * 100 ELSE latency_ms / 1000 * 1000 END"
)


def _histogram(dims: dict[str, str], query: RecordQuery, args: list[Any]) -> str:
    """The CTE ``h``: one row per (dims..., latency bucket) with counts and sums, in one scan."""
    columns = ", ".join(f"{expr} AS {name}" for name, expr in dims.items())
    keys = ", ".join(str(i + 1) for i in range(len(dims) + 1))
    return f"""
        WITH h AS MATERIALIZED (
            SELECT {columns}, {BUCKET} AS latency_ms, count(*) AS n,
                   count(*) FILTER (WHERE {_ERRORS}) AS errors, sum(prompt_tokens) AS prompt_tokens,
                   sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens,
                   sum(cost_micro_usd) AS cost_micro_usd
            FROM usage_records WHERE {where(query, args)} GROUP BY {keys}
        )"""


def _level(kind: str, g: str, g2: str = "NULL") -> str:
    """One summary per value of ``g`` (and ``g2``) read from ``h``: counts, sums, nearest-rank
    percentiles (the first bucket whose running count reaches ``ceil(n * share)``)."""
    return f"""
        SELECT '{kind}' AS kind, g, g2, sum(n)::bigint AS requests, sum(errors)::bigint AS errors,
               sum(prompt_tokens)::bigint AS prompt_tokens,
               sum(completion_tokens)::bigint AS completion_tokens,
               sum(cached_tokens)::bigint AS cached_tokens, sum(cost_micro_usd)::bigint AS cost_micro_usd,
               min(latency_ms) FILTER (WHERE running >= greatest(1, ceil(total * 0.5))) AS latency_p50_ms,
               min(latency_ms) FILTER (WHERE running >= greatest(1, ceil(total * 0.95))) AS latency_p95_ms
        FROM (
            SELECT *, sum(n) OVER (PARTITION BY g, g2 ORDER BY latency_ms) AS running,
                   sum(n) OVER (PARTITION BY g, g2) AS total
            FROM (
                SELECT ({g})::text AS g, ({g2})::text AS g2, latency_ms, sum(n) AS n, sum(errors) AS errors,
                       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
                       sum(cached_tokens) AS cached_tokens, sum(cost_micro_usd) AS cost_micro_usd
                FROM h GROUP BY 1, 2, 3
            ) levelled
        ) ranked GROUP BY g, g2"""


async def _levels(
    ledger: PostgresLedger, query: RecordQuery, dims: dict[str, str], levels: list[str]
) -> dict[str, list[Any]]:
    """Rows of each level (by kind) over one histogram of the records ``query`` matches."""
    args: list[Any] = []
    sql = _histogram(dims, query, args) + " UNION ALL ".join(levels)
    found: dict[str, list[Any]] = {}
    for row in await _fetch(ledger, sql, args):
        found.setdefault(row["kind"], []).append(row)
    return found


def _summaries(rows: list[Any]) -> list[dict[str, Any]]:
    return [_group(row["g"], row) for row in sorted(rows, key=lambda r: r["g"])]


def _totals(rows: list[Any]) -> dict[str, Any]:
    if not rows or not rows[0]["requests"]:
        empty = {**dict.fromkeys(_GROUP_FIELDS, 0), "latency_p50_ms": None, "latency_p95_ms": None}
        return _group("total", empty)
    return _group("total", rows[0])


def _breakdown(pairs: list[Any], models: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cost per provider and model, dearest first; requests per model, most first). Ties: by name."""
    pairs = sorted(pairs, key=lambda r: (-r["cost_micro_usd"], r["g"], r["g2"]))
    models = sorted(models, key=lambda r: (-r["requests"], r["g"]))
    return (
        [
            {
                "provider": r["g"],
                "model": r["g2"],
                "cost_micro_usd": r["cost_micro_usd"],
                "requests": r["requests"],
            }
            for r in pairs
        ],
        [{"model": r["g"], "requests": r["requests"]} for r in models],
    )


_PAIRS = {"provider": "provider", "model": "model"}
_PAIR_LEVELS = [_level("total", "NULL"), _level("pair", "provider", "model"), _level("model", "model")]


async def groups(
    ledger: PostgresLedger, group_by: str, query: RecordQuery
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one summary per group sorted by name, the totals), in one scan of the table."""
    found = await _levels(
        ledger,
        query,
        {"g": GROUP_SQL[group_by]},
        [_level("group", GROUP_NAME.get(group_by, "g")), _level("total", "NULL")],
    )
    return _summaries(found.get("group", [])), _totals(found.get("total", []))


async def by_provider_and_model(ledger: PostgresLedger, query: RecordQuery) -> dict[str, Any]:
    """Per provider, per model, the totals and the cost breakdown, from one scan (the dashboard's groups)."""
    found = await _levels(ledger, query, _PAIRS, [*_PAIR_LEVELS, _level("provider", "provider")])
    costs, popular = _breakdown(found.get("pair", []), found.get("model", []))
    return {
        "providers": _summaries(found.get("provider", [])),
        "models": _summaries(found.get("model", [])),
        "totals": _totals(found.get("total", [])),
        "cost_breakdown": costs,
        "popular_models": popular,
    }


async def usage(ledger: PostgresLedger, group_by: str, query: RecordQuery) -> dict[str, object]:
    """The body of ``GET /admin/usage`` from PostgreSQL (never truncated): one scan when grouped by
    provider or model, two otherwise (the groups, then the cost breakdown)."""
    if group_by in _PAIRS:
        both = await by_provider_and_model(ledger, query)
        data, totals = both[f"{group_by}s"], both["totals"]
        costs, popular = both["cost_breakdown"], both["popular_models"]
    else:
        data, totals = await groups(ledger, group_by, query)
        found = await _levels(ledger, query, _PAIRS, _PAIR_LEVELS[1:])
        costs, popular = _breakdown(found.get("pair", []), found.get("model", []))
    return {
        "group_by": group_by,
        "since": query.since,
        "until": query.until,
        "data": data,
        "totals": totals,
        "cost_breakdown": costs,
        "popular_models": popular,
        "truncated": False,
    }


async def series(ledger: PostgresLedger, query: RecordQuery, step: int) -> list[dict[str, object]]:
    """Requests, tokens and cost per ``step`` seconds (the dashboard's time series)."""
    args: list[Any] = [step]
    # Binned per row with date_bin (cheap), turned into unix seconds once per bucket.
    sql = (
        "SELECT extract(epoch FROM b)::bigint AS at, requests, prompt_tokens, completion_tokens, "
        "cost_micro_usd "
        "FROM (SELECT date_bin(make_interval(secs => $1), started_at, timestamptz 'epoch') AS b, "
        "count(*) AS requests, sum(prompt_tokens)::bigint AS prompt_tokens, "
        "sum(completion_tokens)::bigint AS completion_tokens, sum(cost_micro_usd)::bigint AS cost_micro_usd "
        f"FROM usage_records WHERE {where(query, args)} GROUP BY 1) binned ORDER BY 1"
    )
    return [dict(row) for row in await _fetch(ledger, sql, args)]


async def first_record(ledger: PostgresLedger, query: RecordQuery) -> float | None:
    args: list[Any] = []
    sql = f"SELECT extract(epoch FROM min(started_at))::float8 FROM usage_records WHERE {where(query, args)}"
    rows = await _fetch(ledger, sql, args)
    return rows[0][0] if rows else None


async def records_page(ledger: PostgresLedger, query: RecordQuery) -> dict[str, object]:
    """One page of ``GET /admin/usage/records``: ordered by (started_at, request_id); the cursor is the
    last record's ``<microseconds>:<request id>``."""
    args: list[Any] = []
    clause = where(query, args)
    after = _parse_cursor(query.cursor)
    if after is not None:
        args += [EPOCH + datetime.timedelta(microseconds=after[0]), after[1]]
        clause += f" AND (started_at, request_id) > (${len(args) - 1}, ${len(args)})"
    args.append(query.limit + 1)
    sql = (
        f"SELECT {SELECT}, (extract(epoch FROM started_at) * 1000000)::bigint AS micros FROM usage_records "
        f"WHERE {clause} ORDER BY usage_records.started_at, usage_records.request_id LIMIT ${len(args)}"
    )
    rows = await _fetch(ledger, sql, args)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    cursor = f"{rows[-1]['micros']}:{rows[-1]['request_id']}" if more and rows else None
    return {"data": [record_of(row) for row in rows], "next_cursor": cursor}


def _parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    micros, _, request_id = (cursor or "").partition(":")
    if not micros.isdigit() or not request_id:
        return None  # as the stores do: an unreadable cursor reads from the start
    return int(micros), request_id
