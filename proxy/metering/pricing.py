"""The price table and the arithmetic of money.

Prices are USD per 1M tokens; the endpoints metered in their own units (images, audio seconds, speech
characters, rerank searches) have a unit price beside them (``per_image``...). Where a model's price
comes from, first found wins (each price keeps its :class:`PriceSource`, which the ledger records):

1. ``pricing.models`` in the YAML (``config``), then 2. the price file ``pricing.file`` (``file``): in
   each, ``<provider>/<model>`` (that provider only) beats the plain ``<model>``;
3. prices synced from the provider's catalogue (``sync``);
4. the genai-prices database (``genai-prices``, :mod:`.price_db`), by the provider's plugin;
5. ``pricing.default`` when set (``config``).

No price at all: the request is refused, or served unpriced under ``pricing.unknown: allow``
(:data:`UNPRICED`, source ``none``). Money is integer micro-USD everywhere, and this module holds its one
conversion (:func:`usd_to_micro`, :func:`micro_to_usd`). Prices are held as integer micro-USD per 1M
tokens (or units), so a cost sums exactly until one final division by 1M (rounded half up).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from proxy.config import ConfigError, PriceConfig, Settings, format_error, parse_yaml
from proxy.config.schema import UNIT_PRICES
from proxy.plugin import Provider, Usage

MICRO_USD_PER_USD = 1_000_000
TOKENS_PER_PRICE = 1_000_000  # a price is quoted for this many tokens


def usd_to_micro(usd: float) -> int:
    """USD (config, provider-reported cost) to integer micro-USD, rounded to the nearest."""
    return round(usd * MICRO_USD_PER_USD)


def micro_to_usd(micro_usd: int) -> float:
    return micro_usd / MICRO_USD_PER_USD


class PriceSource(enum.StrEnum):
    """Which source priced a request (the ledger's ``price_source``)."""

    CONFIG = "config"
    FILE = "file"
    SYNC = "sync"
    GENAI_PRICES = "genai-prices"
    NONE = "none"  # no source knew the model, and ``pricing.unknown: allow`` served it at zero


@dataclass(frozen=True, slots=True)
class Price:
    """Integer micro-USD per 1M tokens, and where it came from. ``tiers``: dearer prices for large prompts
    (``(start, price)``, ascending): a prompt of more than ``start`` tokens pays that tier for every token
    (the providers' cliff, as Gemini's and Claude's long-context prices)."""

    input: int
    output: int
    cached_input: int
    cache_write: int
    context_length: int | None = None
    image_tokens: int | None = None  # reserved per image part (None: metering.reserve.image_tokens)
    # A unit price (UNIT_PRICES: "image", "second", "character", "search"), as micro-USD per 1M units
    # like the token prices, so that a cost still sums exactly until one division.
    unit: str | None = None
    per_million_units: int = 0
    source: PriceSource = PriceSource.CONFIG
    tiers: tuple[tuple[int, Price], ...] = ()

    def at(self, prompt_tokens: int) -> Price:
        """The price a prompt of this many tokens pays (the highest tier it passes, else this one)."""
        for start, tier in reversed(self.tiers):
            if prompt_tokens > start:
                return tier
        return self

    @classmethod
    def of(cls, config: PriceConfig, source: PriceSource = PriceSource.CONFIG) -> Price:
        cached = config.cached_input if config.cached_input is not None else config.input
        write = config.cache_write if config.cache_write is not None else config.input
        unit, per_million_units = None, 0
        for name, unit_name in UNIT_PRICES.items():
            usd = getattr(config, name)
            if usd is not None:
                per_unit = usd * 1_000_000 if name != "per_million_characters" else usd
                unit, per_million_units = unit_name, usd_to_micro(per_unit)
        return cls(
            usd_to_micro(config.input),
            usd_to_micro(config.output),
            usd_to_micro(cached),
            usd_to_micro(write),
            config.context_length,
            config.image_tokens,
            unit=unit,
            per_million_units=per_million_units,
            source=source,
        )

    def usd_per_million(self) -> dict[str, float]:
        return {
            "input": micro_to_usd(self.input),
            "output": micro_to_usd(self.output),
            "cached_input": micro_to_usd(self.cached_input),
        }


# What an unpriced request costs under ``pricing.unknown: allow``: nothing, recorded as such.
UNPRICED = Price(0, 0, 0, 0, source=PriceSource.NONE)


def cost_micro_usd(usage: Usage, price: Price) -> int:
    if price.tiers:
        price = price.at(usage.prompt_tokens)
    uncached = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
    total = (
        uncached * price.input
        + usage.cached_tokens * price.cached_input
        + usage.cache_write_tokens * price.cache_write
        + usage.completion_tokens * price.output
        + (usage.units or 0) * price.per_million_units
    )
    return (total + TOKENS_PER_PRICE // 2) // TOKENS_PER_PRICE


def worst_case_micro_usd(prompt_tokens: int, max_output_tokens: int, price: Price) -> int:
    """What admission reserves: every prompt token uncached (or written to cache), all output used, at
    the tier of the prompt's reservation."""
    if price.tiers:
        price = price.at(prompt_tokens)
    per_prompt_token = max(price.input, price.cache_write)
    total = prompt_tokens * per_prompt_token + max_output_tokens * price.output
    return -(-total // TOKENS_PER_PRICE)  # round up: a reservation must never be short


class Fallback(Protocol):
    """A price database consulted after the YAML, the file and synced catalogues (:mod:`.price_db`)."""

    def price(self, plugin: str, model: str) -> Price | None: ...


class PriceTable:
    def __init__(
        self,
        prices: Mapping[str, Price],
        default: Price | None = None,
        *,
        file: Mapping[str, Price] | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self.prices = dict(prices)  # pricing.models
        self.file = dict(file or {})  # pricing.file
        self.default = default
        self.fallback = fallback

    def lookup(
        self,
        provider: str,
        model: str,
        synced: Mapping[str, Price] | None = None,
        providers: Mapping[str, Provider] | None = None,
    ) -> Price | None:
        """The price of ``model`` on ``provider`` (``providers``: the instances, whose plugin the
        fallback is asked by), first source first."""
        scoped = f"{provider}/{model}"
        price = (
            self.prices.get(scoped) or self.prices.get(model) or self.file.get(scoped) or self.file.get(model)
        )
        if price is None and synced:
            price = synced.get(scoped)
        if price is None and providers is not None and self.fallback is not None:
            instance = providers.get(provider)  # only now: the usual request is priced above
            if instance is not None:
                price = self.fallback.price(instance.plugin_name, model)
        return price or self.default


def load_price_table(settings: Settings, fallback: Fallback | None = None) -> PriceTable:
    file: dict[str, Price] = {}
    if settings.pricing.file:
        path = Path(settings.pricing.file)
        if not path.is_absolute():
            path = Path(settings.base_dir) / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"pricing.file: cannot read {str(path)!r} ({exc.strerror})") from None
        except UnicodeDecodeError as exc:  # a ValueError, not an OSError
            raise ConfigError(f"pricing.file: {path} is not UTF-8 text (byte {exc.start})") from None
        # The same loader as the config (duplicate keys refused); str(YAMLError) spans several lines,
        # and every problem must stay on one line.
        data = parse_yaml(text, f"pricing.file({path.name})") or {}
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ConfigError(f"pricing.file: {path} needs a 'models:' mapping of model -> prices")
        models: dict[object, object] = data["models"]
        problems: list[str] = [
            f"pricing.file({path.name}).{extra}: unknown key" for extra in data if extra != "models"
        ]
        for name, entry in models.items():
            try:
                file[str(name)] = Price.of(PriceConfig.model_validate(entry), PriceSource.FILE)
            except ValidationError as exc:
                for err in exc.errors():
                    # The entry's own path as prefix: an error on the entry itself (``gpt-4o: 5``) has
                    # an empty loc, which used to print as ``...models.gpt-4o.<root>``.
                    problems.append(
                        format_error(dict(err), prefix=f"pricing.file({path.name}).models.{name}")
                    )
        if problems:
            raise ConfigError("\n".join(problems))
    prices = {name: Price.of(entry) for name, entry in settings.pricing.models.items()}
    default = Price.of(settings.pricing.default) if settings.pricing.default else None
    return PriceTable(prices, default, file=file, fallback=fallback)
