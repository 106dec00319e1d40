"""The fallback price source: the ``genai-prices`` package (a price database kept current by its
maintainers; upgrading the package updates the prices).

A model is looked up in the database's provider that matches the gateway provider's *plugin*
(:data:`PROVIDER_IDS`), with the database's own matching: dated snapshots (``gpt-4o-2024-08-06``),
compact dates, OpenRouter's ``vendor/model`` ids, and the providers it falls back on (Azure serves
OpenAI's models). Resellers without a table of their own (``aihubmix``, ``newapi``) are priced at the list
price of the vendor the model's name identifies; local servers (``ollama``, ``vllm``, ``lmstudio``,
``openai_compatible``) have none: they are priced in YAML or served under ``pricing.unknown: allow``.

The database prices per token kind (input, output, cache reads and writes), some of them tiered by the
prompt's size; those become a :class:`Price` with ``tiers``. A model priced by other units only (per
image, per request) has no token price here. Prices that change on a date are taken as of the lookup;
time-of-day prices (DeepSeek's off-peak hours) are charged at the dearest of them.

Lookups are cheap and bounded: each database provider is indexed once (its models matched by exact names
in a dict; only the few matched by patterns, such as ``starts_with``, are tried one by one: 12 of
OpenRouter's 923), and results, found or not, are kept in a bounded cache (oldest out first), so names a
client invents under a wildcard route cost one dict lookup and a dozen pattern tests, and cannot grow
memory.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from proxy.metering.pricing import Price, PriceSource, usd_to_micro

if TYPE_CHECKING:
    from genai_prices import types

log = logging.getLogger("efflux.prices")

# Plugin name -> the database's provider id. AUTO: the vendor the model's name identifies (resellers).
AUTO = "*"
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "openrouter": "openrouter",
    "azure": "azure",
    "bedrock": "aws",
    "gemini": "google",
    "gemini_openai": "google",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral",
    "xai": "x-ai",
    "together": "together",
    "fireworks": "fireworks",
    "aihubmix": AUTO,
    "newapi": AUTO,
}

CACHE_SIZE = 4096  # (plugin, model) results kept, found or not
_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
# A compact date (``-20240718``), which the database's own matching rewrites before a second try.
_MISSING = object()
_COMPACT_DATE = re.compile(r"-20\d{6}(?=-|:|$)")


class PriceDatabase:
    """``price(plugin, model)``: the database's price for a model on a plugin's provider, or None."""

    def __init__(self, cache_size: int = CACHE_SIZE, ids: dict[str, str] | None = None) -> None:
        from genai_prices.data_snapshot import get_snapshot

        # The database (a large module) is loaded here, with the config, never by a request on the loop.
        get_snapshot()
        self.cache_size = cache_size
        self.ids = PROVIDER_IDS if ids is None else ids
        self._cache: dict[tuple[str, str], Price | None] = {}
        self._indexes: dict[str, _Index] = {}
        self.scans = 0  # lookups that went to the database (the rest came from the cache)
        self.failed = 0  # lookups the package failed (logged once)

    def price(self, plugin: str, model: str) -> Price | None:
        key = (plugin, model)
        cache = self._cache
        found = cache.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        provider_id = self.ids.get(plugin)
        found = self._find(provider_id, model) if provider_id is not None else None
        if len(cache) >= self.cache_size:
            del cache[next(iter(cache))]  # the oldest entry: a plain dict keeps insertion order
        cache[key] = found
        return found

    def _find(self, provider_id: str, model: str) -> Price | None:
        self.scans += 1
        try:
            found = self.model(provider_id, model)
            return to_price(found, datetime.now(UTC)) if found is not None else None
        except Exception as exc:  # the package's data or API changed under us: no price, not a 500
            if not self.failed:
                fields = {"msg": "genai-prices lookup failed", "model": model, "error": repr(exc)}
                log.warning("genai-prices lookup failed", extra={"fields": fields})
            self.failed += 1
            return None

    def model(self, provider_id: str, model: str) -> types.ModelInfo | None:
        """The database's entry for ``model`` at ``provider_id`` (its own matching rules), or None."""
        from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

        providers = get_snapshot().providers
        ref = model.lower()
        if provider_id == AUTO:
            provider = next((p for p in providers if p.model_match and p.model_match.is_match(ref)), None)
        else:
            provider = find_provider_by_id(providers, provider_id)
        if provider is None:
            return None
        found = self._index(provider).match(ref)
        for fallback_id in provider.fallback_model_providers or ():
            if found is not None:
                break
            fallback = next((p for p in providers if p.id == fallback_id), None)
            found = self._index(fallback).match(ref) if fallback is not None else None
        if found is None and _COMPACT_DATE.search(ref):
            found = provider.find_model(ref, all_providers=providers)  # its rewrite of the date, rare
        return found

    def _index(self, provider: types.Provider) -> _Index:
        index = self._indexes.get(provider.id)
        if index is None:
            index = self._indexes[provider.id] = _Index(provider)
        return index


class _Index:
    """A provider's models as the database matches them (first match in order wins), with the exact names
    in a dict: only models matched by a pattern are tried one by one."""

    def __init__(self, provider: types.Provider) -> None:
        self.models = provider.models
        self.exact: dict[str, int] = {}
        self.patterned: list[tuple[int, types.ModelInfo]] = []
        for position, model in enumerate(self.models):
            names = _exact_names(model.match)
            if names is None:
                self.patterned.append((position, model))
            else:
                for name in names:
                    self.exact.setdefault(name.lower(), position)

    def match(self, ref: str) -> types.ModelInfo | None:
        position = self.exact.get(ref)
        for at, model in self.patterned:
            if position is not None and at > position:
                break  # the exact match comes first in the database's order
            if model.is_match(ref):
                return model
        return self.models[position] if position is not None else None


def _exact_names(clause: object) -> list[str] | None:
    """The names an ``equals`` rule (or an ``or`` of them) matches; None for any other rule."""
    from genai_prices.types import ClauseEquals, ClauseOr

    if isinstance(clause, ClauseEquals):
        return [clause.equals]
    if isinstance(clause, ClauseOr):
        names: list[str] = []
        for inner in clause.or_:
            found = _exact_names(inner)
            if found is None:
                return None
            names += found
        return names
    return None


def to_price(model: types.ModelInfo, when: datetime) -> Price | None:
    """The database's token prices of ``model`` as of ``when`` -> a Price (None: no token price)."""
    prices = _current(model, when)
    values = [getattr(prices, key, None) for key in _KEYS]
    if values[0] is None and values[1] is None:
        return None  # priced per image, per request...: nothing per token
    starts = sorted({tier.start for v in values if _tiered(v) for tier in v.tiers})  # type: ignore[union-attr]
    tiers = tuple((start, _flat(model, values, start)) for start in starts)
    return _flat(model, values, None, tiers)


def _flat(
    model: types.ModelInfo,
    values: list[object],
    above: int | None,
    tiers: tuple[tuple[int, Price], ...] = (),
) -> Price:
    """One price from the four values, each at its tier for a prompt above ``above`` tokens."""
    inp, out, read, write = (_at(v, above) for v in values)
    base = inp if inp is not None else Decimal(0)
    return Price(
        _micro(base),
        _micro(out if out is not None else Decimal(0)),
        _micro(read if read is not None else base),
        _micro(write if write is not None else base),
        context_length=model.context_window or None,
        source=PriceSource.GENAI_PRICES,
        tiers=tiers,
    )


def _at(value: object, above: int | None) -> Decimal | None:
    if not _tiered(value):
        return value if isinstance(value, Decimal) else None
    price: Decimal = value.base  # type: ignore[attr-defined]
    if above is not None:
        for tier in value.tiers:  # type: ignore[attr-defined]
            if tier.start <= above:  # a prompt above ``above`` tokens has passed this tier's start
                price = tier.price
    return price


def _tiered(value: object) -> bool:
    return hasattr(value, "tiers") and hasattr(value, "base")


def _micro(usd_per_million: Decimal) -> int:
    return usd_to_micro(float(usd_per_million))


def _current(model: types.ModelInfo, when: datetime) -> types.ModelPrice:
    """The last price whose start date has come; among time-of-day prices, the dearest input price."""
    from genai_prices.types import ModelPrice, TimeOfDateConstraint

    prices = model.prices
    if isinstance(prices, ModelPrice):
        return prices
    chosen = prices[0].prices
    for conditional in prices:
        constraint = conditional.constraint
        if constraint is None or (
            not isinstance(constraint, TimeOfDateConstraint) and constraint.active(when)
        ):
            chosen = conditional.prices
    for conditional in prices:
        if isinstance(conditional.constraint, TimeOfDateConstraint) and _input(conditional.prices) > _input(
            chosen
        ):
            chosen = conditional.prices
    return chosen


def _input(prices: types.ModelPrice) -> Decimal:
    value = _at(getattr(prices, "input_mtok", None), None)
    return value if value is not None else Decimal(0)
