"""The ledger's table: migrations, idempotent batch inserts, partitions and retention, fields without a
column kept in ``extra``."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg

from proxy.ledger.migrate import migrate, migrations, pending
from proxy.ledger.postgres import PostgresLedger
from proxy.store.records import Outcome, UsageRecord


def record(n: int, *, tenant: str = "acme", started_at: float | None = None, cost: int = 1000) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{n:08d}",
        key=f"key{n % 3}",
        tenant=tenant,
        model="gpt-4o-mini" if n % 2 else "claude",
        provider="local" if n % 2 else "backup",
        upstream_model="m",
        prompt_tokens=10 + n,
        completion_tokens=5,
        cached_tokens=1,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_micro_usd=cost,
        provider_cost_micro_usd=None,
        latency_ms=100 + n,
        ttfb_ms=None if n % 2 else 20,
        outcome=Outcome.UPSTREAM_ERROR if n % 5 == 0 else Outcome.COMPLETED,
        estimated=False,
        started_at=started_at if started_at is not None else time.time() - n,
        client_request_id=f"client-{n}" if n % 4 == 0 else None,
    )


async def opened(url: str, retention: float = 400 * 86400) -> PostgresLedger:
    ledger = PostgresLedger(url, retention)
    await ledger.open(migrate_schema=True)
    return ledger


async def test_migrations_apply_once_and_record_their_versions(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await pending(conn) == [m.name for m in migrations()]
        assert await migrate(conn) == [m.name for m in migrations()]
        assert await migrate(conn) == []
        assert await pending(conn) == []
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in migrations()]
    finally:
        await conn.close()


async def test_replicas_migrating_together_apply_each_migration_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(conn) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(applied, key=len) == [[], [], [], [m.name for m in migrations()]]


async def test_a_replayed_batch_inserts_nothing(database_url: str) -> None:
    ledger = await opened(database_url)
    try:
        batch = [record(n) for n in range(1, 51)]
        await ledger.write(batch)
        await ledger.write([*batch[10:30], record(51)])
        async with ledger.connection() as conn:
            count, cost = await conn.fetchrow("SELECT count(*), sum(cost_micro_usd) FROM usage_records")
            row = await conn.fetchrow("SELECT * FROM usage_records WHERE request_id = 'req_00000004'")
        assert (count, cost) == (51, 51 * 1000)
        assert row["client_request_id"] == "client-4" and row["outcome"] == "completed"
        assert row["ttfb_ms"] == 20 and row["prompt_tokens"] == 14
    finally:
        await ledger.close()


async def test_a_field_without_a_column_is_kept_in_extra(database_url: str) -> None:
    ledger = await opened(database_url)
    try:
        async with ledger.connection() as conn:
            await conn.execute("ALTER TABLE usage_records DROP COLUMN client_request_id")
        ledger._layout = None  # as a gateway started before the column's migration would see the table
        await ledger.write([record(4)])
        async with ledger.connection() as conn:
            extra = await conn.fetchval("SELECT extra FROM usage_records")
        assert '"client_request_id": "client-4"' in extra
    finally:
        await ledger.close()


async def test_month_partitions_are_created_and_retention_drops_old_months(database_url: str) -> None:
    day = 86400.0
    ledger = await opened(database_url, retention=400 * day)
    try:
        now = time.time()
        ancient = record(1, started_at=now - 500 * day)  # past retention already: the default partition
        old, recent = record(2, started_at=now - 200 * day), record(3, started_at=now - 10 * day)
        await ledger.prepare()
        await ledger.write([ancient, old, recent])
        async with ledger.connection() as conn:
            placed = dict(await conn.fetch("SELECT request_id, tableoid::regclass::text FROM usage_records"))
        assert placed[ancient.request_id] == "usage_records_default"
        assert placed[old.request_id].startswith("usage_records_y")
        assert placed[recent.request_id].startswith("usage_records_y")
        ledger.retention = 90 * day
        assert await ledger.retain() >= 1  # the month of ``old`` is dropped whole
        async with ledger.connection() as conn:
            ids = [r[0] for r in await conn.fetch("SELECT request_id FROM usage_records")]
        assert ids == [recent.request_id]
    finally:
        await ledger.close()


def test_every_record_field_has_a_column() -> None:
    from proxy.ledger.rows import TYPES

    sql = migrations()[0].sql
    for f in dataclasses.fields(UsageRecord):
        assert f.name in TYPES and f"    {f.name} " in sql, f.name
