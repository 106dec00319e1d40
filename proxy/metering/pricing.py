"""The price table and the arithmetic of money.

Prices are USD per 1M tokens; the endpoints metered in their own units (images, audio seconds, speech
characters, rerank searches) have a unit price beside them (``per_image``...). A price for
``<provider>/<model>`` applies on that provider only and beats the plain ``<model>`` entry; YAML (file or
inline) beats synced catalogue prices; ``pricing.default`` is used only when set. Money is integer
micro-USD everywhere, and this module holds its one conversion (:func:`usd_to_micro`,
:func:`micro_to_usd`). Prices are held as integer micro-USD per 1M tokens (or units), so a cost sums
exactly until one final division by 1M (rounded half up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from proxy.config import ConfigError, PriceConfig, Settings, format_error, parse_yaml
from proxy.config.schema import UNIT_PRICES
from proxy.plugin import Usage

MICRO_USD_PER_USD = 1_000_000
TOKENS_PER_PRICE = 1_000_000  # a price is quoted for this many tokens


def usd_to_micro(usd: float) -> int:
    """USD (config, provider-reported cost) to integer micro-USD, rounded to the nearest."""
    return round(usd * MICRO_USD_PER_USD)


def micro_to_usd(micro_usd: int) -> float:
    return micro_usd / MICRO_USD_PER_USD


@dataclass(frozen=True, slots=True)
class Price:
    """Integer micro-USD per 1M tokens."""

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

    @classmethod
    def of(cls, config: PriceConfig) -> Price:
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
            unit,
            per_million_units,
        )

    def usd_per_million(self) -> dict[str, float]:
        return {
            "input": micro_to_usd(self.input),
            "output": micro_to_usd(self.output),
            "cached_input": micro_to_usd(self.cached_input),
        }


def cost_micro_usd(usage: Usage, price: Price) -> int:
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
    """What admission reserves: every prompt token uncached (or written to cache), all output used."""
    per_prompt_token = max(price.input, price.cache_write)
    total = prompt_tokens * per_prompt_token + max_output_tokens * price.output
    return -(-total // TOKENS_PER_PRICE)  # round up: a reservation must never be short


class PriceTable:
    def __init__(self, prices: Mapping[str, Price], default: Price | None = None) -> None:
        self.prices = dict(prices)
        self.default = default

    def lookup(self, provider: str, model: str, synced: Mapping[str, Price] | None = None) -> Price | None:
        price = self.prices.get(f"{provider}/{model}") or self.prices.get(model)
        if price is None and synced:
            price = synced.get(f"{provider}/{model}")
        return price or self.default


def load_price_table(settings: Settings) -> PriceTable:
    prices: dict[str, Price] = {}
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
                prices[str(name)] = Price.of(PriceConfig.model_validate(entry))
            except ValidationError as exc:
                for err in exc.errors():
                    # The entry's own path as prefix: an error on the entry itself (``gpt-4o: 5``) has
                    # an empty loc, which used to print as ``...models.gpt-4o.<root>``.
                    problems.append(
                        format_error(dict(err), prefix=f"pricing.file({path.name}).models.{name}")
                    )
        if problems:
            raise ConfigError("\n".join(problems))
    for name, entry in settings.pricing.models.items():
        prices[name] = Price.of(entry)
    default = Price.of(settings.pricing.default) if settings.pricing.default else None
    return PriceTable(prices, default)
