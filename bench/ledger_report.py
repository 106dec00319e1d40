"""Reports and export over a large PostgreSQL ledger: how long the SQL reports take over 10M records, and
how much memory a streamed export of 1M records takes.

    .venv/bin/python -m bench.ledger_report                      # 10M records, then the timings
    .venv/bin/python -m bench.ledger_report --records 1000000 --export

It creates a database of its own on ``--server`` (default the machine's PostgreSQL at 127.0.0.1:5432),
applies the package's migrations, bulk-loads ``--records`` generated records spread over 12 months (50
tenants, 1000 keys, 20 models, 5 providers) with ``COPY``, runs ANALYZE, then times each report as the
gateway computes it (:mod:`proxy.ledger.reports`, the code behind ``/admin/usage``, the dashboard and
``/admin/usage/records``): the best of ``--repeat`` runs. ``--export`` also exports the newest 1M records
as CSV through the CLI (``usage export``) and through a gateway process (``GET /admin/usage/export``) and
reports each process's peak RSS (VmHWM). The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import yaml

from proxy.ledger import reports
from proxy.ledger.migrate import migrate
from proxy.ledger.postgres import PostgresLedger, month_start
from proxy.ledger.rows import UTC
from proxy.services.overview import from_ledger
from proxy.store.records import RecordQuery

DAY = 86400.0
SPAN = 365 * DAY
COLUMNS = (
    "request_id", "key", "tenant", "model", "provider", "upstream_model", "prompt_tokens",
    "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens", "cost_micro_usd",
    "provider_cost_micro_usd", "latency_ms", "ttfb_ms", "outcome", "estimated", "started_at", "endpoint",
    "status", "attempts", "client_request_id",
)  # fmt: skip
CHUNK = 1_000_000  # rows generated and copied per COPY


def generated(
    first: int, count: int, total: int, now: datetime.datetime
) -> AsyncIterator[tuple[object, ...]]:
    """Rows of the ledger, deterministic in their index (the oldest first)."""

    async def rows() -> AsyncIterator[tuple[object, ...]]:
        step = SPAN / total
        start = now - datetime.timedelta(seconds=SPAN)
        for i in range(first, first + count):
            prompt, completion = 50 + i % 900, 10 + i % 400
            error = i % 37 == 0
            yield (
                f"req_{i:012x}", f"key{i % 1000}", f"tenant{i % 50}", f"model{i % 20}", f"provider{i % 5}",
                f"upstream{i % 20}", prompt, completion, i % 7, 0, 0, prompt + 3 * completion, None,
                50 + (i * 7919) % 3000, None if error else 20 + i % 200,
                "upstream_error" if error else "completed", False,
                start + datetime.timedelta(seconds=i * step), "chat/completions", 502 if error else 200, 1,
                None,
            )  # fmt: skip

    return rows()


async def load(url: str, total: int) -> float:
    now = datetime.datetime.now(UTC)
    ledger = PostgresLedger(url, 2 * SPAN)
    await ledger.open(migrate_schema=True)
    first_month = month_start(now - datetime.timedelta(seconds=SPAN))
    await ledger.prepare({month_start(first_month, i) for i in range(14)})
    await ledger.close()
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        for first in range(0, total, CHUNK):
            count = min(CHUNK, total - first)
            await conn.copy_records_to_table(
                "usage_records", records=generated(first, count, total, now), columns=COLUMNS
            )
            print(
                f"  loaded {first + count:>11,} records ({time.perf_counter() - started:.0f} s)", flush=True
            )
        await conn.execute("ANALYZE usage_records")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def timed(repeat: int, what: str, make: object) -> None:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        await make()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    print(f"  {what:<58} {best * 1000:>9.0f} ms", flush=True)


async def run_reports(url: str, repeat: int) -> None:
    ledger = PostgresLedger(url, 2 * SPAN)
    await ledger.open()
    now = time.time()
    everything = RecordQuery()
    month = RecordQuery(since=now - 30 * DAY)
    tenant = RecordQuery(tenant="tenant7")
    tenant_month = RecordQuery(tenant="tenant7", since=now - 30 * DAY)
    try:
        print("report (as /admin/usage, /ui/api/overview, /admin/usage/records compute it)      best time")
        for group_by in ("day", "model", "provider", "key", "tenant"):
            await timed(
                repeat,
                f"/admin/usage group_by={group_by}, all records",
                lambda g=group_by: reports.usage(ledger, g, everything),
            )
        await timed(
            repeat, "/admin/usage group_by=model, last 30 days", lambda: reports.usage(ledger, "model", month)
        )
        await timed(
            repeat,
            "/admin/usage group_by=day, one tenant (1/50), all time",
            lambda: reports.usage(ledger, "day", tenant),
        )
        await timed(
            repeat,
            "/admin/usage group_by=key, one tenant, last 30 days",
            lambda: reports.usage(ledger, "key", tenant_month),
        )
        await timed(repeat, "dashboard overview, all records", lambda: from_ledger(ledger, everything))
        await timed(repeat, "dashboard overview, last 30 days", lambda: from_ledger(ledger, month))
        await timed(
            repeat, "dashboard overview, one tenant, last 30 days", lambda: from_ledger(ledger, tenant_month)
        )
        await timed(
            repeat,
            "/admin/usage/records, first page of 100",
            lambda: reports.records_page(ledger, RecordQuery()),
        )
        await timed(
            repeat,
            "/admin/usage/records, one tenant, since 30 days, 1000",
            lambda: reports.records_page(
                ledger, RecordQuery(tenant="tenant7", since=now - 30 * DAY, limit=1000)
            ),
        )
    finally:
        await ledger.close()  # fmt: skip


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_export(url: str, total: int, rows: int) -> None:
    since = time.time() - SPAN * rows / total  # the newest ``rows`` records
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "gateway.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "server": {"admin_token": "bench-admin-token-0123456789abcdef"},
                    "ledger": {"backend": "postgres", "url": url},
                }
            )
        )
        started = time.perf_counter()
        with open(Path(tmp) / "out.csv", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "usage", "export", "--config", str(config), "--format", "csv",
                 "--since", str(since)], stdout=out,
            )  # fmt: skip
            proc.wait()
        cli_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        size = (Path(tmp) / "out.csv").stat().st_size
        with open(Path(tmp) / "out.csv", "rb") as written:
            lines = sum(1 for _ in written) - 1
        print(
            f"  CLI usage export --format csv: {lines:,} records, {size / 1e6:.0f} MB in "
            f"{time.perf_counter() - started:.1f} s, peak RSS {cli_peak / 1024:.0f} MiB"
        )
        from proxy.testing.gateway_process import GatewayProcess

        gateway = GatewayProcess(yaml.safe_load(config.read_text())).start()
        try:
            idle = peak_rss_kib(gateway.proc.pid)  # type: ignore[union-attr]
            started = time.perf_counter()
            request = urllib.request.Request(
                f"{gateway.url}/admin/usage/export?format=csv&since={since}",
                headers={"Authorization": "Bearer bench-admin-token-0123456789abcdef"},
            )
            received = 0
            with urllib.request.urlopen(request, timeout=600) as resp:
                while chunk := resp.read(1 << 16):
                    received += len(chunk)
            peak = peak_rss_kib(gateway.proc.pid)  # type: ignore[union-attr]
            print(
                f"  GET /admin/usage/export?format=csv: {received / 1e6:.0f} MB in "
                f"{time.perf_counter() - started:.1f} s, gateway peak RSS {peak / 1024:.0f} MiB "
                f"(after start: {idle / 1024:.0f} MiB)"
            )
        finally:
            gateway.stop()


async def main_async(args: argparse.Namespace) -> None:
    name = args.database or f"efflux_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{args.server}/postgres")
    url = f"{args.server}/{name}"
    print(f"database {name} on {args.server}")
    if args.database is None:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        if args.database is None:
            conn = await asyncpg.connect(url)
            await migrate(conn)
            await conn.close()
            seconds = await load(url, args.records)
            print(f"loaded {args.records:,} records in {seconds:.0f} s")
        await run_reports(url, args.repeat)
        if args.export:
            await asyncio.to_thread(run_export, url, args.records, min(args.export_rows, args.records))
    finally:
        if not args.keep and args.database is None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--export", action="store_true", help="also measure the export of --export-rows")
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", help="an existing database loaded by --keep: time it again, no load")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
