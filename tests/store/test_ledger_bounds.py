"""The store's own ledger is bounded by its settings: ``store.memory_ledger_records`` (the memory store keeps
the most recent N) and ``store.ledger_stream_records`` (each tenant's Redis stream is trimmed near N)."""

from __future__ import annotations

import time
import uuid

from proxy.config import parse_settings
from proxy.store import open_store
from proxy.store.base import Scope, Settlement
from proxy.store.records import Outcome, RecordQuery, UsageRecord
from proxy.store.redis_scripts import tenant_base


def record(n: int) -> UsageRecord:
    return UsageRecord(
        f"req_{n}",
        "k",
        "acme",
        "m",
        "p",
        "m",
        1,
        1,
        0,
        0,
        0,
        10,
        None,
        5,
        None,
        Outcome.COMPLETED,
        False,
        time.time(),
    )


async def settle(store: object, count: int) -> None:
    for n in range(count):
        await store.settle(Settlement(record(n), (Scope("key", "k", "acme"),), 0, 0))  # type: ignore[attr-defined]


async def test_memory_ledger_records_bounds_the_memory_ledger() -> None:
    store = open_store(parse_settings({"store": {"memory_ledger_records": 50}}))
    await settle(store, 120)
    page = await store.records(RecordQuery(limit=1000))
    assert [r.request_id for r in page.data] == [f"req_{n}" for n in range(70, 120)]


async def test_ledger_stream_records_trims_each_tenant_stream(redis_url: str) -> None:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    store = open_store(
        parse_settings(
            {"store": {"backend": "redis", "url": redis_url, "prefix": prefix, "ledger_stream_records": 10}}
        )
    )
    try:
        await settle(store, 400)
        client = __import__("redis").Redis.from_url(redis_url)
        try:
            length = client.xlen(f"{tenant_base(prefix, 'acme')}:ledger")
        finally:
            client.close()
        assert 10 <= length <= 200  # MAXLEN ~: trimmed by whole nodes of 100 entries
    finally:
        await store.close()
