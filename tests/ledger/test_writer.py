"""The stream writer on a real Redis store: every settled record reaches the table once; entries a dead
consumer took and never acknowledged are claimed by another writer and stored."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from test_postgres import opened, record

from proxy.ledger.writer import GROUP, StreamWriter
from proxy.store.base import Scope, Settlement
from proxy.store.redis import RedisStore


async def settle_all(
    store: RedisStore, count: int, tenants: tuple[str, ...] = ("a", "b"), first: int = 0
) -> list[str]:
    ids = []
    for n in range(first, first + count):
        tenant = tenants[n % len(tenants)]
        item = record(n, tenant=tenant)
        await store.settle(Settlement(item, (Scope("key", item.key, tenant),), 0, 0))
        ids.append(item.request_id)
    return ids


async def stored(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT request_id FROM usage_records ORDER BY 1")]
    finally:
        await conn.close()


async def until_stored(url: str, count: int) -> list[str]:
    for _ in range(200):
        ids = await stored(url)
        if len(ids) >= count:
            return ids
        await asyncio.sleep(0.05)
    return await stored(url)


@pytest.mark.redis  # its Redis fixtures are requested by name: the marker is not inferred
@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "cluster"])
async def test_entries_of_a_dead_consumer_are_claimed_and_stored_once(
    request: pytest.FixtureRequest, cluster: bool, database_url: str
) -> None:
    url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
    store = RedisStore(url, prefix=f"w{uuid.uuid4().hex[:8]}", timeout=1.0, cluster=cluster)
    ledger = await opened(database_url)
    try:
        ids = await settle_all(store, 30)
        # A consumer that read everything and died before its INSERT: all 30 entries pending with it.
        taken = await store.ledger_group().read(GROUP, "dead-replica", 100)
        assert len(taken) == 30
        writer = StreamWriter(ledger, store.ledger_group())
        writer.reclaim_idle, writer.reclaim_every = 0.3, 0.1
        task = asyncio.create_task(writer.run())
        try:
            more = await settle_all(store, 10, tenants=("c",), first=1000)
            assert await until_stored(database_url, 40) == sorted(ids + more)
            await asyncio.sleep(0.5)  # claims and reads go on: nothing is stored twice
            assert len(await stored(database_url)) == 40
            assert await store.ledger_group().backlog(GROUP) == 0  # everything acknowledged
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await ledger.close()
        await store.close()
