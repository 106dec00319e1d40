"""Model sync: fetch a provider's catalogue, store it for every replica, report what changed.

``sync_provider`` runs one sync: ``provider.list_models`` under ``sync.timeout``, merged with the stored
catalogue (:mod:`proxy.state.catalogues`), written back as one document only when something changed. A failure
(non-2xx, HTML, truncated body, timeout, connection error) writes nothing, so the last good catalogue
keeps serving; it raises a ``sync`` alert. Every run updates the provider's status document (kind
``sync-status``: last run, last success, runs, failures, counts), read by ``GET /admin/providers``.

``run_schedule`` (one task per replica) starts each provider's sync when ``sync.every`` has passed since
the last run *by any replica*: a named store lock lets one replica run it, and the shared status document
tells the others it is done. The same task re-publishes the snapshot when a retiring model's grace ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

from proxy.errors import GatewayError, InvalidRequest
from proxy.gateway import GATEWAY, Gateway
from proxy.plugin import CatalogueError, Provider
from proxy.state import catalogues
from proxy.store.base import StoreUnavailable

log = logging.getLogger("efflux.sync")

STATUS = "sync-status"
TICK = 1.0  # how often the schedule looks for a due sync
_LOCK_MARGIN = 30.0  # a lock outlives the sync's own timeout, so a slow sync is never run twice
_PROCESS = uuid.uuid4().hex
_running: set[tuple[int, str]] = set()  # (gateway, provider) syncs in progress in this process


class SyncFailed(GatewayError):
    status = 502
    type = "upstream_error"
    code = "sync_failed"


class SyncBusy(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "sync_in_progress"


@dataclass(frozen=True, slots=True)
class Report:
    provider: str
    diff: catalogues.Diff
    models: int
    duration: float


async def sync_provider(gw: Gateway, name: str) -> Report:
    """Sync one provider now. Raises SyncFailed (catalogue kept, alert raised) or SyncBusy."""
    snapshot = gw.snapshot
    provider = snapshot.providers[name]
    config = snapshot.settings.providers[name]
    timeout = config.sync.timeout if config.sync else 30.0
    grace = config.sync.grace if config.sync else 86400.0
    if type(provider).list_models is Provider.list_models:
        raise InvalidRequest(f"Provider '{name}' (plugin {config.plugin!r}) has no model catalogue to sync.")
    # The store lock keeps other replicas out; its owner is this gateway, so the lock is re-entrant here
    # and ``_running`` keeps this gateway's own concurrent syncs of one provider apart.
    lock, owner, mine = f"sync:{name}", f"{_PROCESS}:{id(gw)}", (id(gw), name)
    if mine in _running or not await gw.store.try_lock(lock, owner, timeout + _LOCK_MARGIN):
        raise SyncBusy(f"A sync of provider '{name}' is already running.")
    _running.add(mine)
    started = time.time()
    try:
        try:
            async with asyncio.timeout(timeout):
                fresh = await provider.list_models(gw.http)
            if not fresh:
                raise CatalogueError("the catalogue lists no models")
        except (CatalogueError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = describe_failure(exc, timeout)
            await _record(gw, name, started, error=reason)
            _alert(gw, name, reason)
            message = f"Syncing provider '{name}' failed: {reason}. The last good catalogue is kept."
            raise SyncFailed(message) from None
        previous = catalogues.decode(await gw.store.get_doc(catalogues.KIND, name))
        models, diff = catalogues.merge(previous, fresh, started, grace)
        if models != previous:
            await gw.store.put_doc(catalogues.KIND, name, catalogues.encode(name, models))
        active = sum(1 for e in models.values() if e.get("retires_at") is None)
        await _record(gw, name, started, diff=diff, models=active)
    finally:
        _running.discard(mine)
        await _release(gw, lock, owner)
    m = gw.metrics
    m.sync_runs.labels(name, "success").inc()
    m.sync_models.labels(name).set(active)
    m.sync_last_success.labels(name).set(time.time())
    for kind, names in diff.as_json().items():
        m.sync_changes.labels(name, kind).inc(len(names))
    log.info("synced %s: %d models, +%d ~%d -%d", name, active, *map(len, diff.as_json().values()))
    return Report(name, diff, active, time.time() - started)


def describe_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no complete answer within {timeout:g}s"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the catalogue body was cut off"
    if isinstance(exc, aiohttp.ClientError):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)


async def status(gw: Gateway, name: str) -> dict[str, object]:
    raw = await gw.store.get_doc(STATUS, name)
    data = orjson.loads(raw) if raw else {}
    return data if isinstance(data, dict) else {}


async def _record(
    gw: Gateway,
    name: str,
    started: float,
    *,
    error: str | None = None,
    diff: catalogues.Diff | None = None,
    models: int | None = None,
) -> None:
    data = await status(gw, name)
    runs = _count(data, "runs") + 1
    failures = _count(data, "failures") + (1 if error else 0)
    data.update(
        runs=runs,
        failures=failures,
        success_rate=round((runs - failures) / runs, 4),
        last_run=started,
        last_duration_ms=round((time.time() - started) * 1000, 1),
        last_error=error,
    )
    if error is None:
        assert diff is not None
        data.update(last_success=started, models=models, **{k: len(v) for k, v in diff.as_json().items()})
    await gw.store.put_doc(STATUS, name, orjson.dumps(data))


def _count(data: dict[str, object], name: str) -> int:
    value = data.get(name)
    return value if isinstance(value, int) else 0


def _alert(gw: Gateway, name: str, reason: str) -> None:
    gw.metrics.sync_runs.labels(name, "failure").inc()
    gw.metrics.alerts.labels("sync").inc()
    alert: dict[str, object] = {
        "type": "sync",
        "scope": "provider",
        "name": name,
        "error": reason,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    gw.alerts.operator("sync_failed", f"sync_failed/{name}", alert)


async def _release(gw: Gateway, lock: str, owner: str) -> None:
    # The store has no unlock verb: renewing our own lock for a millisecond frees it for other replicas.
    with contextlib.suppress(StoreUnavailable):  # if it fails, the lock expires by itself
        await gw.store.try_lock(lock, owner, 0.001)


async def due(gw: Gateway, name: str, every: float, now: float) -> bool:
    last = (await status(gw, name)).get("last_run")
    return not isinstance(last, int | float) or now - last >= every


async def run_schedule(gw: Gateway, tick: float = TICK) -> None:
    """Each replica runs this; the lock and the shared status make it one sync per schedule overall."""
    while True:
        await asyncio.sleep(tick)
        snapshot = gw.snapshot
        now = time.time()
        if snapshot.retiring and min(snapshot.retiring.values()) <= now and gw.live is not None:
            gw.live.rebase(gw.live.base)  # a grace period ended: rebuild the layers without it
        for name, config in snapshot.settings.providers.items():
            if config.sync is None or config.sync.every is None or not snapshot.serving(name):
                continue
            try:
                if await due(gw, name, config.sync.every, now):
                    await sync_provider(gw, name)
            except (SyncBusy, SyncFailed):
                pass  # another replica has it, or the failure is already alerted and recorded
            except StoreUnavailable:
                log.warning("store unreachable: sync of %s postponed", name)
            except Exception:
                log.exception("scheduled sync of %s failed", name)


def background(app: web.Application) -> AsyncIterator[None]:
    """The app's sync resource (a cleanup_ctx after the gateway's own): the schedule task."""

    async def run() -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(run_schedule(app[GATEWAY]), name="efflux-sync")
        try:
            yield
        finally:
            task.cancel()

    return run()
