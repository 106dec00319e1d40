"""``efflux-gateway migrate`` and ``efflux-gateway usage export`` as an operator runs them (processes)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import orjson
import yaml
from test_postgres import record

from proxy.ledger.postgres import PostgresLedger
from proxy.store.base import Scope, Settlement
from proxy.store.redis import RedisStore


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def config_file(tmp_path: Path, ledger: dict[str, object] | None) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"ledger": ledger} if ledger else {}), encoding="utf-8")
    return str(path)


async def test_migrate_creates_the_schema_once(database_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, {"backend": "postgres", "url": database_url})
    first = run("migrate", "--config", config)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_usage_records" in first.stdout
    again = run("migrate", "--config", config)
    assert again.returncode == 0 and "schema up to date" in again.stdout
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        assert await conn.fetchval("SELECT to_regclass('usage_records') IS NOT NULL")
    finally:
        await conn.close()


def test_migrate_without_a_ledger_is_a_config_error(tmp_path: Path) -> None:
    result = run("migrate", "--config", config_file(tmp_path, None))
    assert result.returncode == 2 and "ledger: required to migrate" in result.stderr


async def test_usage_export_streams_the_filtered_records(database_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, {"backend": "postgres", "url": database_url})
    assert run("migrate", "--config", config).returncode == 0
    now = time.time()
    records = [record(n, tenant=f"t{n % 2}", started_at=now - 100 * n) for n in range(1, 41)]
    ledger = PostgresLedger(database_url, 400 * 86400)
    await ledger.open()
    await ledger.write(records)
    await ledger.close()

    since = str(now - 2000)
    result = run("usage", "export", "--config", config, "--format", "csv", "--tenant", "t0", "--since", since)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = sorted(
        (r for r in records if r.tenant == "t0" and r.started_at >= now - 2000), key=lambda r: r.started_at
    )
    assert [r["request_id"] for r in rows] == [r.request_id for r in expected]
    assert rows[0]["outcome"] in ("completed", "upstream_error") and rows[0]["estimated"] == "false"

    result = run("usage", "export", "--config", config, "--format", "jsonl")
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 40 and {line["tenant"] for line in lines} == {"t0", "t1"}


async def test_usage_export_without_postgres_reads_the_redis_ledger(redis_url: str, tmp_path: Path) -> None:
    prefix = f"x{uuid.uuid4().hex[:8]}"
    store = RedisStore(redis_url, prefix=prefix, timeout=1.0)
    try:
        for n in range(5):
            item = record(n, tenant="acme")
            await store.settle(Settlement(item, (Scope("key", item.key, "acme"),), 0, 0))
    finally:
        await store.close()
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"store": {"backend": "redis", "url": redis_url, "prefix": prefix}}))
    result = run("usage", "export", "--config", str(path), "--format", "jsonl", "--tenant", "acme")
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["request_id"] for line in result.stdout.splitlines()] == [
        f"req_{n:08d}" for n in range(5)
    ]


def test_usage_export_of_a_memory_store_points_at_the_endpoint(tmp_path: Path) -> None:
    result = run("usage", "export", "--config", config_file(tmp_path, None))
    assert result.returncode == 2 and "use the admin API there" in result.stderr
