"""The ledger's commands:

    efflux-gateway migrate --config F                    apply the PostgreSQL ledger's migrations
    efflux-gateway usage export --config F --format csv|jsonl [--since S] [--until U] [--tenant T]

``usage export`` writes to stdout, streamed: from PostgreSQL when ``ledger:`` is configured, else from the
Redis store's ledger streams (a memory store lives inside one gateway process: use its
``GET /admin/usage/export``). ``--since``/``--until`` are unix seconds or ISO 8601 dates.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Callable

from proxy.cli.commands import open_for_commands
from proxy.config import ConfigError, Settings
from proxy.errors import GatewayError
from proxy.ledger import LedgerUnavailable, open_ledger
from proxy.ledger.export import FORMATS, export
from proxy.ledger.migrate import migrate
from proxy.store import StoreUnavailable
from proxy.store.records import RecordQuery


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    migrate_parser = sub.add_parser("migrate", help="apply the PostgreSQL ledger's schema migrations")
    add_config(migrate_parser)
    usage = sub.add_parser("usage", help="the ledger's records")
    usage_sub = usage.add_subparsers(dest="usage_command", required=True)
    exporter = usage_sub.add_parser("export", help="print the ledger's records as CSV or JSON lines")
    add_config(exporter)
    exporter.add_argument("--format", choices=FORMATS, default="csv", help="csv (with a header) or jsonl")
    exporter.add_argument("--since", type=moment, help="unix seconds or ISO 8601 (inclusive)")
    exporter.add_argument("--until", type=moment, help="unix seconds or ISO 8601 (exclusive)")
    exporter.add_argument("--tenant", help="only this tenant's records")


def moment(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither unix seconds nor an ISO 8601 date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def migrate_command(settings: Settings) -> int:
    ledger = open_ledger(settings)
    if ledger is None:
        raise ConfigError("ledger: required to migrate (ledger: {backend: postgres, url: ...})")

    async def run() -> list[str]:
        await ledger.open()
        try:
            async with ledger.connection() as conn:
                return await migrate(conn)
        finally:
            await ledger.close()

    try:
        applied = asyncio.run(run())
    except LedgerUnavailable as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    for name in applied:
        print(f"applied {name}")
    print("schema up to date" if not applied else f"{len(applied)} migration(s) applied")
    return 0


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    ledger = open_ledger(settings)
    store = open_for_commands(settings) if ledger is None else None
    query = RecordQuery(tenant=args.tenant, since=args.since, until=args.until)
    out = sys.stdout.buffer

    async def run() -> None:
        try:
            if ledger is not None:
                await ledger.open()
            async for chunk in export(args.format, query, ledger=ledger, store=store):
                out.write(chunk)
            out.flush()
        finally:
            if ledger is not None:
                await ledger.close()
            if store is not None:
                await store.close()

    try:
        asyncio.run(run())
    except (LedgerUnavailable, StoreUnavailable, GatewayError) as exc:
        print(f"usage export: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0  # the reader (head, a closed pipe) has what it wanted
    return 0
