"""The genai-prices fallback (``proxy.metering.price_db``) and the order of the price sources.

The acceptance rows: every model of the README's examples and of the example config's routes has a
price, and so does every model the package prices per token for the configured providers' plugins.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import (
    ClauseEquals,
    ClauseOr,
    ClauseStartsWith,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    StartDateConstraint,
    TimeOfDateConstraint,
)

from proxy.config import load_settings, parse_settings
from proxy.metering.price_db import AUTO, PROVIDER_IDS, PriceDatabase, to_price
from proxy.metering.pricing import Price, PriceSource, cost_micro_usd, worst_case_micro_usd
from proxy.plugin import Usage
from proxy.state.snapshot import build_snapshot, route_targets

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.example.yaml"
M = 1_000_000


@pytest.mark.parametrize(
    ("plugin", "model", "input_usd", "output_usd"),
    [
        ("openai", "gpt-3.5-turbo", 0.5, 1.5),
        ("openai", "o1", 15.0, 60.0),
        ("openai", "o3-mini", 1.1, 4.4),
        ("openai", "text-embedding-ada-002", 0.1, 0.0),
        ("openai", "gpt-4o-2024-11-20", 2.5, 10.0),  # a dated snapshot: the model's price
        ("openai", "gpt-4o-mini-20240718", 0.15, 0.6),  # a compact date, as LiteLLM and OpenRouter write
        ("anthropic", "claude-3-5-haiku-20241022", 0.8, 4.0),
        ("xai", "grok-4", 3.0, 15.0),
        ("groq", "llama-3.3-70b-versatile", 0.59, 0.79),
        ("mistral", "mistral-large-latest", 2.0, 6.0),
        ("aihubmix", "gpt-4o-mini", 0.15, 0.6),  # a reseller: the vendor the name identifies
    ],
)
def test_the_issues_models_are_priced(plugin: str, model: str, input_usd: float, output_usd: float) -> None:
    price = PriceDatabase().price(plugin, model)
    assert price is not None and price.source is PriceSource.GENAI_PRICES
    assert (price.input, price.output) == (round(input_usd * M), round(output_usd * M))


def test_openrouter_ids_and_cached_prices() -> None:
    db = PriceDatabase()
    llama = db.price("openrouter", "meta-llama/llama-3.1-8b-instruct")
    assert llama is not None and llama.input > 0
    mini = db.price("openai", "gpt-4o-mini")
    assert mini is not None and mini.cached_input == 75_000  # cache reads at their own price


@pytest.mark.parametrize("plugin", ["openai_compatible", "ollama", "vllm", "lmstudio", "no-such-plugin"])
def test_local_servers_and_unknown_plugins_have_no_fallback(plugin: str) -> None:
    assert PriceDatabase().price(plugin, "gpt-4o-mini") is None


def test_unknown_models_and_models_without_token_prices_have_none() -> None:
    db = PriceDatabase()
    assert db.price("openai", "no-such-model-anywhere") is None
    assert db.price("openai", "dall-e-3") is None  # per image only: nothing per token


def test_tiered_prices_charge_a_long_prompt_at_its_tier() -> None:
    price = PriceDatabase().price("gemini", "gemini-2.5-pro")
    assert price is not None and price.tiers
    start, tier = price.tiers[0]
    assert start == 200_000 and tier.input > price.input and tier.output > price.output
    short = Usage(prompt_tokens=start, completion_tokens=1000)
    long = Usage(prompt_tokens=start + 1, completion_tokens=1000)
    assert cost_micro_usd(short, price) == (start * price.input + 1000 * price.output + M // 2) // M
    assert cost_micro_usd(long, price) == ((start + 1) * tier.input + 1000 * tier.output + M // 2) // M
    # a reservation of a long prompt is taken at the tier too
    assert worst_case_micro_usd(start + 1, 0, price) == -(-(start + 1) * tier.input // M)


def test_a_price_that_starts_later_applies_from_its_date_and_time_of_day_prices_at_the_dearest() -> None:
    cheap, dear = ModelPrice(input_mtok=Decimal(1)), ModelPrice(input_mtok=Decimal(2))
    model = ModelInfo(
        id="m",
        match=ClauseEquals(equals="m"),
        prices=[
            ConditionalPrice(prices=cheap),
            ConditionalPrice(StartDateConstraint(start_date=datetime(2030, 1, 1).date()), prices=dear),
        ],
    )
    before = to_price(model, datetime(2029, 6, 1, tzinfo=UTC))
    after = to_price(model, datetime(2031, 1, 1, tzinfo=UTC))
    assert before is not None and after is not None and (before.input, after.input) == (M, 2 * M)
    model.prices = [
        ConditionalPrice(prices=cheap),
        ConditionalPrice(TimeOfDateConstraint(start_time=time(0, 30), end_time=time(1, 0)), prices=dear),
    ]
    for hour in (0, 12):  # whenever the lookup runs, the off-peak discount is not assumed
        price = to_price(model, datetime(2031, 1, 1, hour, 45, tzinfo=UTC))
        assert price is not None and price.input == 2 * M


def test_lookups_are_cached_and_the_cache_is_bounded() -> None:
    db = PriceDatabase(cache_size=2)
    assert db.price("openai", "gpt-4o") is not None
    assert db.price("openai", "gpt-4o") is not None
    assert db.scans == 1  # the second came from the cache
    for name in ("invented-1", "invented-1", "invented-2", "invented-3"):
        assert db.price("openrouter", name) is None
    assert db.scans == 4  # misses are cached too
    assert len(db._cache) == 2  # the bound is the point of this test


def test_the_sources_in_order(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(
        "models:\n  gpt-4o: {input: 20}\n  openai/o1: {input: 21}\n  gpt-4.1: {input: 22}\n"
    )
    settings = parse_settings(
        {
            "providers": {"openai": {"plugin": "openai", "api_key": "sk"}},
            "pricing": {"file": "prices.yaml", "models": {"gpt-4o": {"input": 10}}, "default": {"input": 99}},
        },
        base_dir=str(tmp_path),
    )
    snapshot = build_snapshot(settings)
    synced = {"openai/gpt-4.1": Price(30 * M, 0, 0, 0, source=PriceSource.SYNC)}
    snapshot = dataclasses.replace(snapshot, synced_prices={**synced, "openai/o3": synced["openai/gpt-4.1"]})

    def source(model: str) -> tuple[str, float]:
        price = snapshot.price("openai", model)
        assert price is not None
        return price.source.value, price.input / M

    assert source("gpt-4o") == ("config", 10)  # the YAML beats the file
    assert source("o1") == ("file", 21)  # <provider>/<model> in the file
    assert source("gpt-4.1") == ("file", 22)  # the file beats a synced price
    assert source("o3") == ("sync", 30)  # a synced price beats the package
    assert source("o3-mini") == ("genai-prices", 1.1)
    assert source("nothing-knows-this") == ("config", 99)  # pricing.default, last


# --- acceptance: a price for every model a user can route to -------------------------------------------

README_MODELS = [
    # (provider of the example config, upstream model): the README's examples and the issue's list
    ("local", "demo-model"),
    ("local", "demo-embedding"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-3.5-turbo"),
    ("openai", "o1"),
    ("openai", "o3-mini"),
    ("openai", "text-embedding-ada-002"),
    ("openai", "gpt-4o-2024-08-06"),
    ("aihubmix", "gpt-4o-mini"),
    ("openrouter", "openai/gpt-4o-mini"),
    ("openrouter", "meta-llama/llama-3.1-8b-instruct"),
    ("anthropic", "claude-sonnet-4-5"),
    ("openrouter", "anthropic/claude-sonnet-4.5"),
]


def test_every_model_of_the_readme_and_of_the_example_routes_has_a_price() -> None:
    snapshot = build_snapshot(load_settings(EXAMPLE, env={}))
    targets = route_targets(snapshot.routing)
    assert ("openai", "gpt-4o-mini") in targets and len(targets) >= 6
    missing = [t for t in [*targets, *README_MODELS] if snapshot.price(*t) is None]
    assert not missing


def test_every_model_the_package_prices_per_token_for_the_configured_providers_has_a_price() -> None:
    snapshot = build_snapshot(load_settings(EXAMPLE, env={}))
    providers = get_snapshot().providers
    checked = unnamed = 0
    for name, instance in snapshot.providers.items():
        provider_id = PROVIDER_IDS.get(instance.plugin_name)
        if provider_id is None or provider_id == AUTO:
            continue
        db_provider = find_provider_by_id(providers, provider_id)
        assert db_provider is not None, provider_id
        for model in db_provider.models:
            tokens = to_price(model, datetime.now(UTC))
            if tokens is None:
                continue  # priced per image, per request...: no token price to have
            ref = a_name_of(model)
            if ref is None:
                unnamed += 1
                continue
            checked += 1
            assert snapshot.price(name, ref) is not None, (name, ref)
    assert checked > 500  # openai, anthropic and openrouter's tables, not an empty loop
    assert unnamed < 10  # models matched only by patterns this test cannot write a name for


def a_name_of(model: ModelInfo) -> str | None:
    """A name a client would send for ``model``: its id where its own rule matches it (``ft:gpt-4o``
    matches only ``ft:gpt-4o-2024-...``), else one written from the rule."""
    if model.is_match(model.id):
        return model.id
    candidates = [_name_for(model.match)]
    return next((c for c in candidates if c is not None and model.is_match(c)), None)


def _name_for(clause: object) -> str | None:
    if isinstance(clause, ClauseEquals):
        return clause.equals
    if isinstance(clause, ClauseStartsWith):
        return f"{clause.starts_with}08-06"
    if isinstance(clause, ClauseOr):
        return next((n for c in clause.or_ if (n := _name_for(c)) is not None), None)
    return None


@pytest.mark.parametrize(
    "provider_id", ["openrouter", "openai", "anthropic", "google", "aws", "azure", "x-ai"]
)
def test_the_index_matches_as_the_package_does(provider_id: str) -> None:
    """The exact-name index gives the model the package's own scan gives: for every id, dated and
    compact-dated forms, and names nobody priced (Azure's fallbacks to OpenAI's table included)."""
    db = PriceDatabase()
    providers = get_snapshot().providers
    provider = find_provider_by_id(providers, provider_id)
    assert provider is not None
    refs = [m.id for m in provider.models] + ["invented-model", "gpt-4o-mini", "claude-3-5-sonnet-20241022"]
    refs += [f"{m.id}-2024-08-06" for m in provider.models] + [f"{m.id}-20240806" for m in provider.models]
    for ref in refs:
        assert db.model(provider_id, ref) is provider.find_model(ref.lower(), all_providers=providers), ref


def test_a_failing_package_gives_no_price_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = PriceDatabase()

    def broken(provider_id: str, model: str) -> None:
        raise AttributeError("the package changed")

    monkeypatch.setattr(db, "model", broken)
    with caplog.at_level("WARNING", logger="efflux.prices"):
        assert db.price("openai", "gpt-4o") is None
        assert db.price("openai", "o1") is None
    assert db.failed == 2 and len([r for r in caplog.records if r.name == "efflux.prices"]) == 1
