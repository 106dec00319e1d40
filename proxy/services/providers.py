"""Providers at run time: describe them (model count, sync status, usage), lay fields over a YAML
provider or add one (a shared document, :mod:`proxy.state.overlay`: every replica follows within a second
and a reload keeps it), drop those fields again, and sync a catalogue now (:mod:`proxy.services.sync`).

A change that moves a provider's calls to another address (its ``base_url``, or its plugin's default)
must give ``api_key`` again when the provider has a key: the key it had was meant for the old address,
and an admin token must not be enough to send it anywhere. The ``${VAR}`` references a change may make
are limited to ``server.runtime_env_allowlist`` (:mod:`proxy.state.overlay`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

import orjson
from pydantic import BaseModel

from proxy.config import BreakerConfig, ConfigError, ProviderConfig, Settings, SyncConfig, Timeouts
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.plugin.registry import PluginNotFound
from proxy.services import refresh
from proxy.services.sync import status, sync_provider
from proxy.state import catalogues
from proxy.state.overlay import PROVIDERS, base_url, is_reference, merged_provider
from proxy.store.records import RecordQuery
from proxy.tenancy import provider_secrets
from proxy.tenancy.vault import Vault

_USAGE_FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_micro_usd")
_USAGE_PAGES = 50  # at most 50 x 1000 ledger records are summed per listing


class ProviderPatch(BaseModel):
    plugin: str | None = None
    base_url: str | None = None
    api_key: str | None = None  # a ${VAR} reference, or the key itself (sealed in the vault)
    headers: dict[str, str] | None = None
    enabled: bool | None = None
    timeouts: Timeouts | None = None
    breaker: BreakerConfig | None = None
    sync: SyncConfig | None = None
    byok: Literal["optional", "required", "never"] | None = None


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
    api_key: str | None = None  # where the key comes from: "${VAR}", "vault" (pasted, sealed) or None
    headers: list[str] = []  # header names only (values may be credentials)
    timeouts: dict[str, object] | None = None
    breaker: dict[str, object] | None = None
    byok: str | None = None


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
        "api_key": await _key_source(gw, name, override),
        "headers": sorted(config.headers),
        "timeouts": config.timeouts.model_dump(),
        "breaker": config.breaker.model_dump(),
        "byok": config.byok,
    }


async def _key_source(gw: Gateway, name: str, override: bytes | None) -> str | None:
    """Where the provider's key comes from, never the key: the ``${VAR}`` as written, or "vault"."""
    if await provider_secrets.has_secret(gw.store, name):
        return "vault"
    written = orjson.loads(override).get("api_key") if override else None
    if written is None:
        base = gw.live.base.settings if gw.live is not None else gw.snapshot.settings
        yaml = base.providers.get(name)
        written = _raw_reference(yaml.api_key) if yaml is not None and yaml.api_key else None
    return written if isinstance(written, str) and is_reference(written) else ("set" if written else None)


def _raw_reference(value: str) -> str:
    """A YAML key is interpolated at load: say only that one is set."""
    return value if is_reference(value) else "set"


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


async def list_providers(gw: Gateway, since: float) -> dict[str, object]:
    """Every provider, with its usage totals since ``since``."""
    usage = await usage_by_provider(gw, since)
    data = []
    for name in gw.snapshot.providers:
        entry = await describe(gw, name)
        entry["usage"] = {"since": since, **usage.get(name, dict.fromkeys(_USAGE_FIELDS, 0))}
        data.append(entry)
    return {"data": data, "next_cursor": None}


def known(gw: Gateway, name: str) -> None:
    if name not in gw.snapshot.providers:
        raise NotFound(f"No provider named '{name}'.", param="name")


async def get_provider(gw: Gateway, name: str) -> dict[str, object]:
    known(gw, name)
    return await describe(gw, name)


async def patch_provider(gw: Gateway, name: str, body: Mapping[str, object]) -> dict[str, object]:
    """Lay ``body``'s fields over the provider's run-time fields (``null`` drops one); the provider must
    still load with them."""
    unknown = sorted(set(body) - set(ProviderPatch.model_fields))
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown field", param=unknown[0])
    pasted = _pasted_key(body)
    if pasted is not None:  # the key itself: sealed below, never in the shared override document
        body = {k: v for k, v in body.items() if k != "api_key"} | {"api_key": None}
        vault = Vault.from_settings(gw.snapshot.settings)
        if not vault.configured:
            raise InvalidRequest(
                "api_key: the vault is not configured (set secrets.master_keys), so a pasted key cannot be "
                "stored; give a ${VAR} reference instead.",
                param="api_key",
            )
    sealed_before = await provider_secrets.has_secret(gw.store, name)
    raw = await gw.store.get_doc(PROVIDERS, name)
    current: Mapping[str, object] = orjson.loads(raw) if raw else {}
    override = {k: v for k, v in {**current, **body}.items() if v is not None}
    base = gw.live.base.settings if gw.live is not None else gw.snapshot.settings
    try:
        config = merged_provider(base, name, override)
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidRequest(f"Invalid provider '{name}': {exc}", param=first.split(":", 1)[0]) from None
    has_key = config.api_key or sealed_before
    key_given = body.get("api_key") or pasted is not None
    if has_key and not key_given and base_url(config) != _serving_url(base, name, current):
        raise InvalidRequest(
            f"api_key: give the key again to move provider '{name}' to another base_url (the key it has "
            "was meant for the old address).",
            param="api_key",
        )
    if "api_key" in body and sealed_before:
        # the old sealed key goes first: it must never serve the new fields (a new base_url), not even
        # for the moment between two writes
        await provider_secrets.drop_secret(gw.store, name)
    await gw.store.put_doc(PROVIDERS, name, orjson.dumps(override))
    if pasted is not None:
        await provider_secrets.store_secret(gw.store, vault, name, pasted)
    await refresh(gw)
    return await describe(gw, name)


def _pasted_key(body: Mapping[str, object]) -> str | None:
    """The key itself when ``api_key`` is not a ``${VAR}`` reference (None: none given, or a reference)."""
    key = body.get("api_key")
    if key is None or (isinstance(key, str) and is_reference(key)):
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > 4096 or not key.isprintable():
        raise InvalidRequest(
            "api_key: give a ${VAR} reference or the key itself (printable text).", param="api_key"
        )
    return key.strip()


def _serving_url(base: Settings, name: str, current: Mapping[str, object]) -> str | None:
    """Where the provider's calls go before the change (None: it does not exist, or cannot load)."""
    config: ProviderConfig | None = base.providers.get(name)
    try:
        if current:
            config = merged_provider(base, name, current)
        return base_url(config) if config is not None else None
    except (ConfigError, PluginNotFound):
        return None


async def drop_override(gw: Gateway, name: str) -> None:
    """Drop a provider's run-time fields: the YAML provider serves as written."""
    dropped_key = await provider_secrets.drop_secret(gw.store, name)
    if not await gw.store.delete_doc(PROVIDERS, name) and not dropped_key:
        raise NotFound(f"Provider '{name}' has no run-time changes.", param="name")
    await refresh(gw)


async def sync_now(gw: Gateway, name: str) -> dict[str, object]:
    """Sync the provider's catalogue; this replica routes by it before returning. SyncFailed and
    SyncBusy are gateway errors (their envelope is the answer)."""
    known(gw, name)
    report = await sync_provider(gw, name)
    await refresh(gw)
    return {**report.diff.as_json(), "models": report.models, "duration_ms": round(report.duration * 1000, 1)}
