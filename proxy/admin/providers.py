"""Providers: ``GET /admin/providers``, ``GET|PATCH|DELETE /admin/providers/{name}``,
``POST /admin/providers/{name}/sync``.

A PATCH lays fields over the YAML provider (``{"enabled": false}`` is the rollback switch) or adds a
provider (``plugin`` given); it is a shared document (:mod:`proxy.state.overlay`), so every replica
follows within a second and a reload keeps it. DELETE drops the run-time fields: the YAML provider serves
as written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import orjson
from aiohttp import web
from pydantic import BaseModel

from proxy.admin.common import gateway, json_body, json_response, number, operation
from proxy.config import BreakerConfig, ConfigError, SyncConfig, Timeouts
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.services.sync import status, sync_provider
from proxy.state import catalogues
from proxy.state.overlay import PROVIDERS, merged_provider
from proxy.store.records import RecordQuery

_USAGE_FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_micro_usd")
_USAGE_PAGES = 50  # at most 50 x 1000 ledger records are summed per listing


class ProviderPatch(BaseModel):
    plugin: str | None = None
    base_url: str | None = None
    api_key: str | None = None  # a ${VAR} reference only
    headers: dict[str, str] | None = None
    enabled: bool | None = None
    timeouts: Timeouts | None = None
    breaker: BreakerConfig | None = None
    sync: SyncConfig | None = None


class ProviderModel(BaseModel):
    name: str
    plugin: str
    type: str
    enabled: bool
    serving: bool
    source: str
    base_url: str
    sync: dict[str, object] | None
    models: int
    sync_status: dict[str, object]
    usage: dict[str, object] | None = None


class ProviderList(BaseModel):
    data: list[ProviderModel]
    next_cursor: str | None


class SyncReport(BaseModel):
    added: list[str]
    changed: list[str]
    removed: list[str]
    models: int
    duration_ms: float


async def describe(gw: Gateway, name: str) -> dict[str, object]:
    snapshot = gw.snapshot
    config, instance = snapshot.settings.providers[name], snapshot.providers[name]
    base = gw.live.base.settings if gw.live is not None else snapshot.settings
    override = await gw.store.get_doc(PROVIDERS, name)
    source = ("yaml+override" if override else "yaml") if name in base.providers else "runtime"
    models = sum(1 for _ in catalogues.live_entries({name: await _catalogue(gw, name)}, time.time()))
    if not models:  # no catalogue: the routes that name it
        models = sum(1 for r in snapshot.routing.exact.values() if any(t.provider == name for t in r.targets))
    return {
        "name": name,
        "plugin": config.plugin,
        "type": instance.provider_type.value,
        "enabled": config.enabled,
        "serving": snapshot.serving(name),
        "source": source,
        "base_url": instance.base_url,
        "sync": config.sync.model_dump() if config.sync else None,
        "models": models,
        "sync_status": await status(gw, name),
    }


async def _catalogue(gw: Gateway, name: str) -> bytes:
    return await gw.store.get_doc(catalogues.KIND, name) or b"{}"


async def usage_by_provider(gw: Gateway, since: float) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    cursor: str | None = None
    for _ in range(_USAGE_PAGES):
        page = await gw.store.records(RecordQuery(since=since, limit=1000, cursor=cursor))
        for r in page.data:
            t = totals.setdefault(r.provider, dict.fromkeys(_USAGE_FIELDS, 0))
            t["requests"] += 1
            t["errors"] += r.outcome.value != "completed"
            t["prompt_tokens"] += r.prompt_tokens
            t["completion_tokens"] += r.completion_tokens
            t["cost_micro_usd"] += r.cost_micro_usd
        cursor = page.next_cursor
        if cursor is None:
            break
    return totals


@operation(
    "Providers with model count, sync status and usage totals",
    response=ProviderList,
    query=(("since", "number", "usage from this unix time (default: 30 days ago)"),),
    tag="providers",
)
async def list_providers(request: web.Request) -> web.Response:
    gw = gateway(request)
    since = number(request.query, "since") or time.time() - 30 * 86400
    usage = await usage_by_provider(gw, since)
    data = []
    for name in gw.snapshot.providers:
        entry = await describe(gw, name)
        entry["usage"] = {"since": since, **usage.get(name, dict.fromkeys(_USAGE_FIELDS, 0))}
        data.append(entry)
    return json_response({"data": data, "next_cursor": None})


def _known(gw: Gateway, name: str) -> None:
    if name not in gw.snapshot.providers:
        raise NotFound(f"No provider named '{name}'.", param="name")


@operation("One provider", response=ProviderModel, tag="providers")
async def get_provider(request: web.Request) -> web.Response:
    gw, name = gateway(request), request.match_info["name"]
    _known(gw, name)
    return json_response(await describe(gw, name))


@operation(
    "Update, disable or add a provider at run time (fields laid over the YAML)",
    body=ProviderPatch,
    response=ProviderModel,
    tag="providers",
)
async def patch_provider(request: web.Request) -> web.Response:
    gw, name = gateway(request), request.match_info["name"]
    body = await json_body(request)
    unknown = sorted(set(body) - set(ProviderPatch.model_fields))
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown field", param=unknown[0])
    raw = await gw.store.get_doc(PROVIDERS, name)
    current: Mapping[str, object] = orjson.loads(raw) if raw else {}
    override = {k: v for k, v in {**current, **body}.items() if v is not None}
    base = gw.live.base.settings if gw.live is not None else gw.snapshot.settings
    try:
        merged_provider(base, name, override)
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidRequest(f"Invalid provider '{name}': {exc}", param=first.split(":", 1)[0]) from None
    await gw.store.put_doc(PROVIDERS, name, orjson.dumps(override))
    if gw.live is not None:
        await gw.live.refresh()
    return json_response(await describe(gw, name))


@operation(
    "Drop a provider's run-time fields (the YAML provider serves as written)", tag="providers", status=204
)
async def delete_provider(request: web.Request) -> web.Response:
    gw, name = gateway(request), request.match_info["name"]
    if not await gw.store.delete_doc(PROVIDERS, name):
        raise NotFound(f"Provider '{name}' has no run-time changes.", param="name")
    if gw.live is not None:
        await gw.live.refresh()
    return web.Response(status=204)


@operation("Sync the provider's model catalogue now", response=SyncReport, tag="providers")
async def sync_now(request: web.Request) -> web.Response:
    gw, name = gateway(request), request.match_info["name"]
    _known(gw, name)
    report = await sync_provider(gw, name)  # SyncFailed/SyncBusy answer with the error envelope
    if gw.live is not None:
        await gw.live.refresh()  # this replica routes by the new catalogue before answering
    return json_response(
        {**report.diff.as_json(), "models": report.models, "duration_ms": round(report.duration * 1000, 1)}
    )


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/providers", list_providers)
    router.add_get("/providers/{name}", get_provider)
    router.add_patch("/providers/{name}", patch_provider)
    router.add_delete("/providers/{name}", delete_provider)
    router.add_post("/providers/{name}/sync", sync_now)
