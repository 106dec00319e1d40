"""Synced catalogues: the document a sync writes per provider, the diff between two catalogues, and the
snapshot layer that makes synced models routable.

One document per provider (kind ``catalogue``, id = provider name), shared by every replica::

    {"provider": "openrouter", "models": {"openai/gpt-4": {"context_length": 8192, "input": 30.0,
     "output": 60.0, "cached_input": null, "cache_write": null, "features": [...], "owned_by": "openai",
     "retires_at": null}}}

Prices are USD per 1M tokens. A model the provider stopped listing keeps its entry with ``retires_at`` (now
+ ``sync.grace``): it stays routable, marked ``retiring`` in ``/v1/models``, until then.

The layer adds ``<provider>/<model>`` for every live entry, and the bare ``<model>`` where neither YAML nor
the routing overlay claims that name (several providers listing it become fallbacks of one route, in the
order of ``providers:``). Prices go to ``synced_prices``, below any YAML price.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from proxy.config import PriceConfig
from proxy.metering.pricing import Price, PriceSource
from proxy.plugin import ModelInfo
from proxy.routing.table import Route, Target
from proxy.state.snapshot import Snapshot

log = logging.getLogger("efflux.catalogue")

KIND = "catalogue"
_FIELDS = ("context_length", "input", "output", "cached_input", "cache_write", "features", "owned_by")
Entry = dict[str, object]


@dataclass(frozen=True, slots=True)
class Diff:
    added: list[str]
    changed: list[str]
    removed: list[str]

    def as_json(self) -> dict[str, list[str]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


def entry_of(model: ModelInfo) -> Entry:
    data: Entry = {f: getattr(model, f) for f in _FIELDS}
    data["features"] = list(model.features)
    data["retires_at"] = None
    return data


def merge(
    previous: Mapping[str, Entry], fresh: Iterable[ModelInfo], now: float, grace: float
) -> tuple[dict[str, Entry], Diff]:
    """The new catalogue and what changed. ``previous`` is the stored catalogue (retiring entries too).

    A model back after being removed counts as added; a retiring model whose grace ended is dropped.
    """
    models: dict[str, Entry] = {}
    added: list[str] = []
    changed: list[str] = []
    for info in fresh:
        entry = entry_of(info)
        before = previous.get(info.id)
        if before is None or before.get("retires_at") is not None:
            added.append(info.id)
        elif any(before.get(f) != entry[f] for f in _FIELDS):
            changed.append(info.id)
        models[info.id] = entry
    removed: list[str] = []
    for name, before in previous.items():
        if name in models:
            continue
        retires_at = before.get("retires_at")
        if retires_at is None:
            removed.append(name)
            models[name] = {**before, "retires_at": now + grace}
        elif isinstance(retires_at, int | float) and retires_at > now:
            models[name] = dict(before)
    return models, Diff(sorted(added), sorted(changed), sorted(removed))


def encode(provider: str, models: Mapping[str, Entry]) -> bytes:
    return orjson.dumps({"provider": provider, "models": models})


def decode(raw: bytes | None) -> dict[str, Entry]:
    if raw is None:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    models = doc.get("models") if isinstance(doc, dict) else None
    return {k: v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}


def price_of(entry: Mapping[str, object]) -> Price | None:
    """A synced entry's price, or None when the catalogue gives no input price (OpenAI's list)."""
    context = entry.get("context_length")
    try:
        config = PriceConfig.model_validate(
            {
                "input": entry.get("input"),
                "output": entry.get("output") or 0.0,
                "cached_input": entry.get("cached_input"),
                "cache_write": entry.get("cache_write"),
                "context_length": context if isinstance(context, int) and context > 0 else None,
            }
        )
    except ValueError:
        return None
    return Price.of(config, PriceSource.SYNC)


def live_entries(docs: Mapping[str, bytes], now: float) -> Iterable[tuple[str, str, Entry]]:
    """(provider, model, entry) for each entry whose grace has not ended."""
    for provider, raw in docs.items():
        for model, entry in decode(raw).items():
            retires_at = entry.get("retires_at")
            if not isinstance(retires_at, int | float) or retires_at > now:
                yield provider, model, entry


def catalogue_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    """Synced routes and prices on top of ``snapshot`` (after the routing overlay)."""
    now = time.time()
    order = {name: i for i, name in enumerate(snapshot.settings.providers)}
    synced: dict[str, Route] = {}
    prices: dict[str, Price] = {}
    retiring: dict[str, float] = {}
    bare: dict[str, list[tuple[str, float | None]]] = {}
    known = {
        p: docs[p] for p in sorted(docs, key=lambda p: order.get(p, len(order))) if p in snapshot.providers
    }
    for provider, model, entry in live_entries(known, now):
        name = f"{provider}/{model}"
        retires_at = entry.get("retires_at")
        when = float(retires_at) if isinstance(retires_at, int | float) else None
        synced[name] = Route(name, (Target(provider, model, 0, 1.0),))
        price = price_of(entry)
        if price is not None:
            prices[name] = price
        if when is not None:
            retiring[name] = when
        bare.setdefault(model, []).append((provider, when))
    for model, offers in bare.items():
        if model in snapshot.routing.exact or model in snapshot.overlay or model in synced:
            continue
        # active offers before retiring ones; within each, the order of ``providers:``
        offers.sort(key=lambda o: o[1] is not None)
        targets = tuple(Target(p, model, i, 1.0) for i, (p, _) in enumerate(offers))
        synced[model] = Route(model, targets)
        if all(when is not None for _, when in offers):
            retiring[model] = max(when for _, when in offers if when is not None)
    _keep_prices_of_yaml_routes(snapshot, known, prices)
    return dataclasses.replace(snapshot, synced=synced, synced_prices=prices, retiring=retiring)


def _keep_prices_of_yaml_routes(
    snapshot: Snapshot, docs: Mapping[str, bytes], prices: dict[str, Price]
) -> None:
    """A YAML route is never removed by a sync: its target keeps the last synced price after the model's
    grace ended (the upstream may still serve it; the operator decides, not the catalogue)."""
    pinned = {
        (t.provider, t.model)
        for r in snapshot.routing.exact.values()
        for t in r.targets
        if t.model is not None
    }
    for provider, model in pinned:
        name = f"{provider}/{model}"
        if name not in prices and provider in docs:
            entry = decode(docs[provider]).get(model)
            price = price_of(entry) if entry is not None else None
            if price is not None:
                prices[name] = price
