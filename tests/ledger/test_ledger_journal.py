"""The memory store's writer across a PostgreSQL crash: records wait in the local journal
(``ledger.journal``) and reach the table once PostgreSQL is back; past ``ledger.journal_bytes`` they are
dropped from the copy, counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import state
from test_gateway import calls, ledger_config, rows, wait_rows

from proxy.testing.fake_provider import FakeProvider
from proxy.testing.postgres_server import PostgresServer


async def wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never met")


async def test_records_settled_while_postgres_is_down_are_journaled_then_stored(
    make_gateway: Callable[..., Any], fake: FakeProvider, private_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = private_postgres.url()
    client = await make_gateway(ledger_config(fake, url, tmp_path))
    writer = state(client).ledger_writer
    assert writer is not None
    await calls(client, 5)
    await wait_rows(url, 5)
    private_postgres.crash()
    await calls(client, 20)
    journal = tmp_path / "ledger-journal.jsonl"
    await wait_for(lambda: journal.exists() and writer.backlog == 20)
    metrics = await (await client.get("/metrics")).text()
    assert "efflux_ledger_writer_backlog 20.0" in metrics
    lag = next(line for line in metrics.splitlines() if line.startswith("efflux_ledger_writer_lag_seconds "))
    assert float(lag.split()[1]) > 0
    await asyncio.to_thread(private_postgres.start)
    await wait_rows(url, 25)
    await wait_for(lambda: not journal.exists())
    await wait_for(lambda: writer.backlog == 0 and writer.lag == 0)
    assert await rows(url, "SELECT count(DISTINCT request_id) FROM usage_records") == 25
    assert writer.dropped == 0


async def test_past_journal_bytes_records_are_dropped_and_counted(
    make_gateway: Callable[..., Any], fake: FakeProvider, private_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = private_postgres.url()
    client = await make_gateway(ledger_config(fake, url, tmp_path, journal_bytes=1500))
    writer = state(client).ledger_writer
    assert writer is not None
    await calls(client, 1)
    await wait_rows(url, 1)
    private_postgres.crash()
    await calls(client, 10)
    await wait_for(lambda: writer.dropped > 0)
    journal = tmp_path / "ledger-journal.jsonl"
    assert journal.stat().st_size <= 1500
    kept = len(journal.read_bytes().splitlines())
    await asyncio.to_thread(private_postgres.start)
    await wait_rows(url, 1 + kept)
    assert kept + writer.dropped == 10
