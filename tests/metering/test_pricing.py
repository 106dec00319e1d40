"""The price table and the money arithmetic: integer micro-USD, exact until one final rounding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxy.config import ConfigError, PriceConfig, load_settings, parse_settings
from proxy.metering.meter import make_plan
from proxy.metering.pricing import (
    Price,
    PriceSource,
    PriceTable,
    cost_micro_usd,
    load_price_table,
    worst_case_micro_usd,
)
from proxy.plugin import JSONObject, Usage

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.example.yaml"
M = 1_000_000


def price(
    input: float,
    output: float = 0.0,
    cached_input: float | None = None,
    cache_write: float | None = None,
    source: PriceSource = PriceSource.CONFIG,
) -> Price:
    return Price.of(
        PriceConfig(input=input, output=output, cached_input=cached_input, cache_write=cache_write), source
    )


# --- cost ---------------------------------------------------------------------------------------------------


def test_a_million_tokens_at_fifteen_cents_is_150000_micro_usd() -> None:
    assert cost_micro_usd(Usage(prompt_tokens=M), price(0.15, 0.60)) == 150_000
    assert cost_micro_usd(Usage(completion_tokens=M), price(0.15, 0.60)) == 600_000
    assert cost_micro_usd(Usage(prompt_tokens=M, completion_tokens=M), price(0.15, 0.60)) == 750_000


def test_one_token_at_x_per_million_is_x_micro_usd() -> None:
    assert cost_micro_usd(Usage(prompt_tokens=1, completion_tokens=1), price(3.0, 15.0)) == 18


def test_cost_is_an_exact_integer() -> None:
    # 0.1 and 0.7 are not binary fractions; float sums would drift, the integer sum does not
    usage = Usage(prompt_tokens=123_456_789, completion_tokens=987_654_321)
    cost = cost_micro_usd(usage, price(0.1, 0.7))
    assert isinstance(cost, int)
    # 123456789 * 0.1 + 987654321 * 0.7 = 12345678.9 + 691358024.7 = 703703703.6 -> 703703704
    assert cost == 703_703_704


def test_cached_tokens_are_priced_at_cached_input() -> None:
    # OpenAI's meaning: prompt_tokens includes the cached ones
    usage = Usage(prompt_tokens=1_000, completion_tokens=100, cached_tokens=400)
    # 600 * 2.50 + 400 * 1.25 + 100 * 10.00 = 1500 + 500 + 1000
    assert cost_micro_usd(usage, price(2.50, 10.00, cached_input=1.25)) == 3_000


def test_cache_writes_are_priced_at_cache_write() -> None:
    # Anthropic as metered: prompt = input + cache writes + cache reads
    usage = Usage(prompt_tokens=1_000, completion_tokens=10, cached_tokens=500, cache_write_tokens=300)
    p = price(3.00, 15.00, cached_input=0.30, cache_write=3.75)
    # 200 * 3.00 + 300 * 3.75 + 500 * 0.30 + 10 * 15.00 = 600 + 1125 + 150 + 150
    assert cost_micro_usd(usage, p) == 2_025


def test_cached_and_cache_write_default_to_the_input_price() -> None:
    p = price(2.0, 4.0)
    assert p.cached_input == p.input == p.cache_write == 2 * M
    usage = Usage(prompt_tokens=10, cached_tokens=3, cache_write_tokens=2)
    assert cost_micro_usd(usage, p) == 20


def test_more_cached_than_prompt_tokens_never_goes_negative() -> None:
    usage = Usage(prompt_tokens=10, cached_tokens=50)
    assert cost_micro_usd(usage, price(1.0, cached_input=0.5)) == 25


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(1, 1), (2, 1), (3, 2), (5, 3), (7, 4)],  # n * 0.5: 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (banker's would give 2)
)
def test_rounding_is_half_up(tokens: int, expected: int) -> None:
    assert cost_micro_usd(Usage(prompt_tokens=tokens), price(0.5)) == expected


def test_rounding_below_half_goes_down() -> None:
    assert cost_micro_usd(Usage(prompt_tokens=1), price(0.499999)) == 0
    assert cost_micro_usd(Usage(prompt_tokens=3), price(0.15)) == 0  # 0.45
    assert cost_micro_usd(Usage(prompt_tokens=4), price(0.15)) == 1  # 0.60


def test_rounding_happens_once_on_the_sum() -> None:
    # each part alone is 0.4 (-> 0); the sum is 0.8 -> 1
    usage = Usage(prompt_tokens=2, completion_tokens=1)
    assert cost_micro_usd(usage, price(0.2, 0.4)) == 1


def test_free_model_costs_nothing() -> None:
    assert cost_micro_usd(Usage(prompt_tokens=10**9, completion_tokens=10**9), price(0.0)) == 0


# --- worst case (admission) -------------------------------------------------------------------------------


def test_worst_case_is_prompt_plus_all_output() -> None:
    assert worst_case_micro_usd(M, 2 * M, price(0.15, 0.60)) == 150_000 + 1_200_000


def test_worst_case_rounds_up() -> None:
    assert worst_case_micro_usd(1, 0, price(0.15)) == 1  # 0.15 -> 1, never 0
    assert worst_case_micro_usd(0, 1, price(0.0, 0.000001)) == 1
    assert worst_case_micro_usd(3, 0, price(0.5)) == 2  # 1.5 -> 2
    assert worst_case_micro_usd(4, 0, price(0.5)) == 2  # exact stays exact
    assert worst_case_micro_usd(0, 0, price(0.5)) == 0


def test_worst_case_assumes_every_prompt_token_is_a_cache_write_when_that_costs_more() -> None:
    p = price(3.00, 15.00, cached_input=0.30, cache_write=3.75)
    assert worst_case_micro_usd(1_000, 100, p) == 3_750 + 1_500


def test_worst_case_never_below_the_actual_cost() -> None:
    p = price(1.1, 4.4, cached_input=0.275, cache_write=1.375)
    for prompt in (0, 1, 7, 999, 12_345):
        for out in (0, 1, 13, 4096):
            actual = Usage(prompt, out, cached_tokens=prompt // 3, cache_write_tokens=prompt // 4)
            assert worst_case_micro_usd(prompt, out, p) >= cost_micro_usd(actual, p)


# --- the table --------------------------------------------------------------------------------------------


def test_provider_specific_price_beats_the_plain_one() -> None:
    table = PriceTable({"gpt-4o": price(2.5, 10), "azure/gpt-4o": price(2.75, 11)})
    assert table.lookup("azure", "gpt-4o") == price(2.75, 11)
    assert table.lookup("openai", "gpt-4o") == price(2.5, 10)


def test_yaml_price_beats_the_synced_one_and_synced_beats_the_default() -> None:
    synced = {"openrouter/openai/gpt-4o": price(9.0), "openrouter/meta/llama": price(0.1)}
    table = PriceTable({"openai/gpt-4o": price(2.5)}, default=price(50.0))
    assert table.lookup("openrouter", "openai/gpt-4o", synced) == price(2.5)
    assert table.lookup("openrouter", "meta/llama", synced) == price(0.1)
    assert table.lookup("openrouter", "unknown/model", synced) == price(50.0)


def test_synced_prices_apply_only_to_their_provider() -> None:
    synced = {"openrouter/meta/llama": price(0.1)}
    assert PriceTable({}).lookup("aihubmix", "meta/llama", synced) is None


def test_default_price_only_when_set() -> None:
    assert PriceTable({}).lookup("openai", "gpt-unknown") is None
    assert PriceTable({}, default=price(1.0, 2.0)).lookup("openai", "gpt-unknown") == price(1.0, 2.0)


def test_a_zero_price_is_a_price_not_a_missing_one() -> None:
    table = PriceTable({"free-model": price(0.0)}, default=price(99.0))
    assert table.lookup("local", "free-model") == price(0.0)


def test_usd_per_million_round_trips() -> None:
    assert price(0.15, 0.60, cached_input=0.075).usd_per_million() == {
        "input": 0.15,
        "output": 0.60,
        "cached_input": 0.075,
    }


# --- loading ----------------------------------------------------------------------------------------------


def test_the_example_pricing_file_loads() -> None:
    table = load_price_table(load_settings(EXAMPLE, env={}))
    assert len(table.file) >= 30
    mini = table.lookup("openai", "gpt-4o-mini")
    assert mini is not None and mini.source is PriceSource.FILE
    assert (mini.input, mini.output, mini.cached_input) == (150_000, 600_000, 75_000)
    assert mini.context_length == 128_000
    sonnet = table.lookup("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    assert (sonnet.cached_input, sonnet.cache_write) == (300_000, 3_750_000)
    # inline models in the config beat the file and sit beside it
    assert table.lookup("local", "demo-model") == price(0.10, 0.40)
    assert table.lookup("openrouter", "openai/gpt-4o") is not None
    assert table.default is None
    assert table.lookup("local", "no-such-model") is None


def test_inline_prices_beat_the_file(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text("models:\n  m: {input: 1.0, output: 2.0}\n  n: {input: 3}\n")
    settings = parse_settings(
        {"pricing": {"file": "prices.yaml", "models": {"m": {"input": 5.0}}, "default": {"input": 7}}},
        base_dir=str(tmp_path),
    )
    table = load_price_table(settings)
    assert table.lookup("p", "m") == price(5.0)
    assert table.lookup("p", "n") == price(3.0, source=PriceSource.FILE)
    assert table.default == price(7.0)


def test_an_absolute_pricing_path_ignores_base_dir(tmp_path: Path) -> None:
    file = tmp_path / "abs.yaml"
    file.write_text("models:\n  m: {input: 1}\n")
    table = load_price_table(parse_settings({"pricing": {"file": str(file)}}, base_dir="/nonexistent"))
    assert table.lookup("p", "m") == price(1.0, source=PriceSource.FILE)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "models:\n  m: {input: -1}\n",
            r"^pricing\.file\(prices\.yaml\)\.models\.m\.input: input should be greater",
        ),
        ("models:\n  m: {output: 1}\n", r"^pricing\.file\(prices\.yaml\)\.models\.m\.input: required$"),
        ("models:\n  m:\n", r"^pricing\.file\(prices\.yaml\)\.models\.m: input should be a valid dictionary"),
        ("prices:\n  m: {input: 1}\n", r"^pricing\.file: .*prices\.yaml needs a 'models:' mapping"),
        ("", r"^pricing\.file: .*prices\.yaml needs a 'models:' mapping"),
        ("models: {m: {input: 1}}\nextra: 1\n", r"^pricing\.file\(prices\.yaml\)\.extra: unknown key$"),
        (
            "models:\n  m: {input: 1}\n  m: {input: 2}\n",
            r"^pricing\.file\(prices\.yaml\) line 3, column 3: duplicate key",
        ),
    ],
)
def test_a_bad_pricing_file_names_the_entry(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "prices.yaml").write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_price_table(parse_settings({"pricing": {"file": "prices.yaml"}}, base_dir=str(tmp_path)))
    assert len(str(err.value).splitlines()) == 1


def test_a_missing_pricing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^pricing\.file: cannot read .*nope\.yaml' \(No such file"):
        load_price_table(parse_settings({"pricing": {"file": "nope.yaml"}}, base_dir=str(tmp_path)))


# --- each price field, set in YAML, reaches the cost (or, for context_length, the admission plan) -----------

BASE_PRICE = {"input": 1.0, "output": 2.0, "cached_input": 0.5, "cache_write": 3.0, "context_length": 100_000}
CHANGED = {"input": 10.0, "output": 20.0, "cached_input": 5.0, "cache_write": 30.0, "context_length": 50}
MIXED = Usage(
    prompt_tokens=4_000_000,
    completion_tokens=1_000_000,
    cached_tokens=1_000_000,
    cache_write_tokens=1_000_000,
)


@dataclass(slots=True)
class _Demand:
    obj: JSONObject = field(default_factory=dict)  # no messages: the whole body is text
    size: int = 3_000_000  # bytes: a prompt estimate far past any context length below
    max_tokens: int | None = 10
    n: int = 1


def _priced(where: str, field: str | None) -> tuple[int, int]:
    """The cost of ``MIXED`` and the prompt tokens admission reserves, at a price set under
    ``pricing.<where>`` with ``field`` changed (None: the base price)."""
    config = {**BASE_PRICE, **({field: CHANGED[field]} if field else {})}
    pricing = {"default": config} if where == "default" else {"models": {"m-1": config}}
    found = load_price_table(parse_settings({"pricing": pricing})).lookup("local", "m-1")
    assert found is not None
    return cost_micro_usd(MIXED, found), make_plan((), _Demand(), [found], 4096).prompt_tokens


@pytest.mark.parametrize("field", list(BASE_PRICE))
@pytest.mark.parametrize("where", ["default", "models"])
def test_price_fields_from_yaml(where: str, field: str) -> None:
    assert _priced(where, field) != _priced(where, None)
