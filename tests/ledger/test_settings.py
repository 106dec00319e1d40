"""``ledger.retention`` and ``ledger.migrate_on_start`` set through the config, at work in a gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from support import state
from test_gateway import ledger_config
from test_postgres import opened, record

from proxy.testing.fake_provider import FakeProvider


async def table_exists(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT to_regclass('usage_records') IS NOT NULL"))
    finally:
        await conn.close()


async def test_migrate_on_start_creates_the_schema_and_without_it_the_gateway_waits_for_it(
    make_gateway: Callable[..., Any], fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    await make_gateway(ledger_config(fake, database_url, tmp_path, migrate_on_start=False))
    assert not await table_exists(database_url)
    await make_gateway(ledger_config(fake, database_url, tmp_path, migrate_on_start=True))
    assert await table_exists(database_url)


async def test_retention_drops_records_older_than_it(
    make_gateway: Callable[..., Any], fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    day = 86400.0
    ledger = await opened(database_url)
    now = time.time()
    await ledger.write([record(1, started_at=now - 100 * day), record(2, started_at=now - 5 * day)])
    await ledger.close()
    client = await make_gateway(ledger_config(fake, database_url, tmp_path, retention="30d"))
    assert state(client).ledger is not None
    for _ in range(100):  # the writer's maintenance runs as it starts
        conn = await asyncpg.connect(database_url)
        ids = [r[0] for r in await conn.fetch("SELECT request_id FROM usage_records")]
        await conn.close()
        if len(ids) == 1:
            break
        await asyncio.sleep(0.05)
    assert ids == ["req_00000002"]
