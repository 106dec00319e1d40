"""``efflux-gateway sync --config F [provider]``: sync model catalogues now, from the command line.

The sync itself is :func:`proxy.services.sync.sync_provider`, the one the schedule and the admin API run.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import orjson

from proxy.config import Settings
from proxy.gateway import Gateway
from proxy.metering.alerts import Alerter
from proxy.observe.metrics import Metrics
from proxy.services.sync import SyncBusy, SyncFailed, sync_provider
from proxy.state.snapshot import Snapshot
from proxy.store import open_store
from proxy.upstream.client import UpstreamClient


def sync_command(settings: Settings, snapshot: Snapshot, only: str | None) -> int:
    """``efflux-gateway sync --config F [provider]``: sync now, a progress bar on stderr, the diff on
    stdout. With the redis store every running replica picks the result up; with the memory store the
    result only shows what a sync would find. Exit code 1 if any sync failed."""
    names = [only] if only else [n for n, c in settings.providers.items() if c.sync is not None]
    if only and only not in snapshot.providers:
        print(f"unknown provider {only!r} (known: {', '.join(snapshot.providers)})", file=sys.stderr)
        return 2
    if not names:
        print("no provider has 'sync:' configured; name one to sync it anyway", file=sys.stderr)
        return 0
    if settings.store.backend == "memory":
        print(
            "note: memory store, so this result is not kept (running gateways sync themselves)",
            file=sys.stderr,
        )
    return asyncio.run(_sync_all(settings, snapshot, names))


async def _sync_all(settings: Settings, snapshot: Snapshot, names: list[str]) -> int:
    failed = 0
    async with aiohttp.ClientSession() as http:
        store = open_store(settings)
        gw = Gateway(snapshot, store, http, UpstreamClient(), Metrics(), Alerter(None, {}))
        try:
            for i, name in enumerate(names):
                _progress(i, len(names), f"{name}: fetching")
                try:
                    report = await sync_provider(gw, name)
                except (SyncFailed, SyncBusy) as exc:
                    failed += 1
                    _progress(i + 1, len(names), f"{name}: failed", finished=True)
                    print(f"{name}: {exc.message}", file=sys.stderr)
                    continue
                d = report.diff
                _progress(i + 1, len(names), f"{name}: {report.models} models", finished=True)
                print(orjson.dumps({"provider": name, **d.as_json(), "models": report.models}).decode())
        finally:
            await store.close()
    return 1 if failed else 0


def _progress(count: int, total: int, label: str, *, finished: bool = False) -> None:
    width = 24
    filled = width * count // total if total else width
    bar = "#" * filled + "-" * (width - filled)
    # on a terminal the bar redraws in place; in a log, one line per step
    end = "\n" if finished or not sys.stderr.isatty() else ""
    sys.stderr.write(f"\r[{bar}] {count}/{total} {label:<40}{end}")
    sys.stderr.flush()
