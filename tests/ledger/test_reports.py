"""The reports PostgreSQL computes equal those computed in Python from the same records."""

from __future__ import annotations

import dataclasses
import time

import pytest
from test_postgres import opened, record

from proxy.ledger import reports
from proxy.services import analytics
from proxy.store.records import RecordQuery


@pytest.mark.parametrize("group_by", list(analytics.GROUPS))
async def test_usage_in_sql_equals_usage_in_python(database_url: str, group_by: str) -> None:
    now = time.time()
    records = [record(n, tenant=f"t{n % 2}", started_at=now - n * 3000, cost=100 * n) for n in range(1, 120)]
    ledger = await opened(database_url)
    try:
        await ledger.write(records)
        for query in (RecordQuery(), RecordQuery(tenant="t1", since=now - 200_000, until=now - 3000)):
            chosen = [r for r in records if query.matches(r)]
            expected = analytics.report(chosen, group_by)
            got = await reports.usage(ledger, group_by, query)
            assert got["data"] == expected["data"]
            assert got["totals"] == expected["totals"]
            assert got["popular_models"] == expected["popular_models"]
            assert sorted(got["cost_breakdown"], key=str) == sorted(expected["cost_breakdown"], key=str)
    finally:
        await ledger.close()


async def test_records_pages_follow_the_cursor_and_filter(database_url: str) -> None:
    now = time.time()
    records = [record(n, tenant=f"t{n % 2}", started_at=now - 1000 + n) for n in range(1, 41)]
    ledger = await opened(database_url)
    try:
        await ledger.write(records)
        seen: list[dict[str, object]] = []
        cursor = None
        while True:
            page = await reports.records_page(ledger, RecordQuery(tenant="t0", limit=7, cursor=cursor))
            seen += page["data"]  # type: ignore[arg-type]
            cursor = page["next_cursor"]  # type: ignore[assignment]
            if cursor is None:
                break
        expected = [dataclasses.asdict(r) for r in records if r.tenant == "t0"]
        assert [r["request_id"] for r in seen] == [r["request_id"] for r in expected]
        assert seen[3] == {**expected[3], "started_at": pytest.approx(expected[3]["started_at"], abs=1e-5)}
        by_client = await reports.records_page(ledger, RecordQuery(request_id="client-8"))
        assert [r["request_id"] for r in by_client["data"]] == ["req_00000008"]  # type: ignore[union-attr]
    finally:
        await ledger.close()


async def test_percentiles_above_a_second_are_within_one_percent(database_url: str) -> None:
    now = time.time()
    records = [
        dataclasses.replace(record(n, started_at=now - n), latency_ms=1000 + 997 * n) for n in range(1, 200)
    ]
    ledger = await opened(database_url)
    try:
        await ledger.write(records)
        expected = analytics.report(records, "model")["totals"]
        got = (await reports.usage(ledger, "model", RecordQuery()))["totals"]
        for field in ("latency_p50_ms", "latency_p95_ms"):
            assert got[field] <= expected[field] < got[field] * 1.01  # type: ignore[index]
        assert got["requests"] == expected["requests"]  # type: ignore[index]
    finally:
        await ledger.close()
