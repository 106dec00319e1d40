"""A gateway with ``ledger: postgres`` on the memory store: records reach the table, and the records API,
/admin/usage, /me/usage, the dashboard's overview and the export read PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from support import ADMIN, AUTH, base_config, state

from proxy.services import overview
from proxy.testing.fake_provider import FakeProvider

CALLS = 12


async def rows(url: str, sql: str = "SELECT count(*) FROM usage_records") -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def wait_rows(url: str, count: int) -> None:
    for _ in range(200):
        if await rows(url) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the table never held {count} rows (has {await rows(url)})")


def ledger_config(fake: FakeProvider, url: str, tmp_path: Path, **ledger: Any) -> dict[str, Any]:
    journal = str(tmp_path / "ledger-journal")
    section = {"backend": "postgres", "url": url, "migrate_on_start": True, "journal": journal, **ledger}
    return base_config(fake.url, ledger=section)


async def calls(client: Any, count: int) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(count):
        resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
        assert resp.status == 200, await resp.text()


async def test_reads_come_from_postgres(
    make_gateway: Callable[..., Any], fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    client = await make_gateway(ledger_config(fake, database_url, tmp_path))
    await calls(client, CALLS)
    await wait_rows(database_url, CALLS)
    # A row only PostgreSQL has (a record of a replica long gone): every read below must show it.
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "INSERT INTO usage_records (request_id, key, tenant, model, provider, upstream_model, prompt_tokens, "
        "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micro_usd, latency_ms, "
        "outcome, estimated, started_at, endpoint, status, attempts) "
        "VALUES ('req_elsewhere', 'test', 'acme', 'gpt-4o-mini', 'local', 'gpt-4o-mini', 1, 1, 0, 0, 0, 7, "
        "5, 'completed', false, now(), 'chat/completions', 200, 1)"
    )
    await conn.close()

    resp = await client.get("/admin/usage/records", params={"limit": "5"}, headers=ADMIN)
    page = await resp.json()
    assert len(page["data"]) == 5 and page["next_cursor"]
    resp = await client.get("/admin/usage/records", params={"request_id": "req_elsewhere"}, headers=ADMIN)
    assert [r["cost_micro_usd"] for r in (await resp.json())["data"]] == [7]

    resp = await client.get("/admin/usage", params={"group_by": "tenant"}, headers=ADMIN)
    report = await resp.json()
    assert report["totals"]["requests"] == CALLS + 1 and report["truncated"] is False

    resp = await client.get("/me/usage", params={"limit": "100"}, headers=AUTH)
    assert len((await resp.json())["data"]) == CALLS + 1

    dashboard = await overview.overview(state(client), {}, None, None)
    assert dashboard["totals"]["requests"] == CALLS + 1  # type: ignore[index]
    assert sum(p["requests"] for p in dashboard["series"]) == CALLS + 1  # type: ignore[attr-defined]

    resp = await client.get("/admin/usage/export", params={"format": "csv"}, headers=ADMIN)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(table) == CALLS + 1
    assert "req_elsewhere" in {r["request_id"] for r in table}

    resp = await client.get(
        "/admin/usage/export", params={"format": "jsonl", "tenant": "nobody"}, headers=ADMIN
    )
    assert await resp.read() == b""
    resp = await client.get("/admin/usage/export", params={"format": "xml"}, headers=ADMIN)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "format"


async def test_export_without_postgres_reads_the_store(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    client = await make_gateway(base_config(fake.url))
    await calls(client, 3)
    resp = await client.get("/admin/usage/export", params={"format": "jsonl"}, headers=ADMIN)
    lines = (await resp.read()).splitlines()
    assert [orjson.loads(line)["key"] for line in lines] == ["test"] * 3


async def test_a_client_leaving_mid_export_frees_the_cursor_at_once(
    make_gateway: Callable[..., Any], fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    from test_postgres import opened, record

    ledger = await opened(database_url)
    for first in range(0, 40_000, 5000):
        await ledger.write([record(n) for n in range(first, first + 5000)])
    await ledger.close()
    client = await make_gateway(ledger_config(fake, database_url, tmp_path))
    resp = await client.get("/admin/usage/export", params={"format": "jsonl"}, headers=ADMIN)
    assert len(await resp.content.read(1024)) == 1024
    resp.close()  # gone, with megabytes still to send
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            if busy == 0:
                break
            await asyncio.sleep(0.05)
        assert busy == 0  # no cursor left open in a transaction
    finally:
        await conn.close()
