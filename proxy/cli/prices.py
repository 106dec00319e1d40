"""``efflux-gateway prices show MODEL --config F`` and ``prices missing --config F``: where prices come from.

``show`` resolves MODEL as a client's request would and prints, per route target, the source that prices
it (``config``, ``file``, ``sync``, ``genai-prices`` or ``none``) and its prices in USD per 1M tokens.
``missing`` lists the targets of the exact routes (and of synced models) that no source prices, and says
what ``pricing.unknown`` does with them; it exits 1 when there is any. A wildcard route names no model:
it is described on stderr, never counted. With the redis store the synced catalogues are read from it,
so that ``sync`` prices count; with the memory store only the YAML, the file and the package do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from proxy.config import Settings
from proxy.metering.pricing import Price, micro_to_usd
from proxy.routing.table import Route, upstream_model
from proxy.state import catalogues
from proxy.state.snapshot import Snapshot
from proxy.store import StoreUnavailable, open_store

READ_TIMEOUT = 5.0  # seconds to read the synced catalogues from the store


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    prices = sub.add_parser("prices", help="which source prices a model, and which models have no price")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    show = prices_sub.add_parser("show", help="the price of MODEL on each route target, and its source")
    show.add_argument(
        "model", help="the model name a client would send (a route, or a name under a wildcard)"
    )
    missing = prices_sub.add_parser("missing", help="routable models without a price (exit code 1 if any)")
    for parser in (show, missing):
        add_config(parser)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")


@dataclass(frozen=True, slots=True)
class Priced:
    route: str
    provider: str
    model: str
    price: Price | None
    allowed: bool  # served when unpriced (pricing.unknown: allow)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "route": self.route,
            "provider": self.provider,
            "model": self.model,
            "source": self.price.source.value if self.price else "none",
        }
        if self.price is None:
            out["unknown"] = "allow" if self.allowed else "refuse"
            return out
        out.update(_usd(self.price))
        if self.price.tiers:
            out["tiers"] = [{"above_tokens": start, **_usd(tier)} for start, tier in self.price.tiers]
        return out

    def line(self) -> str:
        where = f"{self.provider}/{self.model}"
        if self.price is None:
            what = (
                "served at zero (pricing.unknown: allow)"
                if self.allowed
                else "refused (pricing.unknown: refuse)"
            )
            return f"  {where:<48} none          {what}"
        text = f"  {where:<48} {self.price.source.value:<13} {_text(self.price)}"
        for start, tier in self.price.tiers:
            text += f"\n  {'':<48} {'':<13} above {start} prompt tokens: {_text(tier)}"
        return text


def _usd(price: Price) -> dict[str, float]:
    return {
        "input": micro_to_usd(price.input),
        "output": micro_to_usd(price.output),
        "cached_input": micro_to_usd(price.cached_input),
        "cache_write": micro_to_usd(price.cache_write),
    }


def _text(price: Price) -> str:
    usd = _usd(price)
    return (
        f"input {usd['input']:g}  output {usd['output']:g}  cached {usd['cached_input']:g}  "
        f"cache write {usd['cache_write']:g}  (USD per 1M tokens)"
    )


def prices_command(args: argparse.Namespace, settings: Settings, snapshot: Snapshot) -> int:
    snapshot = with_synced(settings, snapshot)
    if args.prices_command == "show":
        return show(snapshot, args.model, as_json=args.json)
    return missing(snapshot, as_json=args.json)


def show(snapshot: Snapshot, model: str, *, as_json: bool = False) -> int:
    """Exit code 0 when every target is priced or served unpriced, 1 when one is refused, 2 when MODEL
    does not route."""
    resolution = snapshot.resolve(model)
    if resolution is None:
        print(f"{model}: no route (the routing table has no name or pattern for it)", file=sys.stderr)
        return 2
    rows = [
        _priced(snapshot, resolution.route.name, choice.provider, choice.model)
        for choice in resolution.choices
    ]
    if as_json:
        for row in rows:
            print(orjson.dumps({"requested": model, **row.as_json()}).decode())
    else:
        print(f"{model} (route {resolution.route.name}):")
        for row in rows:
            print(row.line())
    return 1 if any(r.price is None and not r.allowed for r in rows) else 0


def missing(snapshot: Snapshot, *, as_json: bool = False) -> int:
    rows = [row for row in routable(snapshot) if row.price is None]
    for row in rows:
        print(orjson.dumps(row.as_json()).decode() if as_json else f"{row.route}:\n{row.line()}")
    for route in snapshot.routing.patterns:
        for target in route.targets:
            policy = "allow" if snapshot.allows_unpriced(target.provider) else "refuse"
            effect = "served at zero" if policy == "allow" else "refused"
            print(
                f"note: {route.name} -> {target.provider}: any model; those no source prices are {effect} "
                f"(pricing.unknown: {policy})",
                file=sys.stderr,
            )
    if not rows:
        print("every routable model has a price", file=sys.stderr)
    return 1 if rows else 0


def routable(snapshot: Snapshot) -> list[Priced]:
    """Every target of the exact routes and of the synced models, priced."""
    rows: list[Priced] = []
    seen: set[tuple[str, str]] = set()
    routes: list[Route] = [
        *snapshot.routing.exact.values(),
        *snapshot.overlay.values(),
        *snapshot.synced.values(),
    ]
    for route in routes:
        if route.pattern:
            continue
        for target in route.targets:
            model = upstream_model(route, target, route.name)
            if (target.provider, model) in seen:
                continue
            seen.add((target.provider, model))
            rows.append(_priced(snapshot, route.name, target.provider, model))
    return rows


def _priced(snapshot: Snapshot, route: str, provider: str, model: str) -> Priced:
    return Priced(route, provider, model, snapshot.price(provider, model), snapshot.allows_unpriced(provider))


def with_synced(settings: Settings, snapshot: Snapshot) -> Snapshot:
    """The snapshot with the store's synced catalogues laid over it (the redis store only)."""
    if settings.store.backend == "memory":
        return snapshot
    try:
        docs = asyncio.run(_read_catalogues(settings))
    except (StoreUnavailable, TimeoutError, OSError) as exc:
        print(f"note: synced prices not read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return snapshot
    return catalogues.catalogue_layer(snapshot, docs)


async def _read_catalogues(settings: Settings) -> dict[str, bytes]:
    store = open_store(settings)
    try:
        return await asyncio.wait_for(store.list_docs(catalogues.KIND), READ_TIMEOUT)
    finally:
        await store.close()
