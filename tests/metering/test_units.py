"""Unit prices (per image, audio second, speech character, rerank search): read from YAML, charged per
unit beside the token prices, reserved at the worst case; audio seconds estimated from a file's size."""

from __future__ import annotations

import pytest

from proxy.config import ConfigError, parse_settings
from proxy.metering.pricing import Price, cost_micro_usd, load_price_table
from proxy.metering.reserve import Prompt
from proxy.metering.units import audio_seconds, unit_plan, worst_units
from proxy.plugin import Endpoint, Usage

# Each unit price field, a USD price, and what one unit then costs in micro-USD.
UNIT_FIELDS = {
    "per_image": (0.04, 40_000),
    "per_second": (0.0001, 100),
    "per_million_characters": (15.0, 15),
    "per_search": (0.002, 2_000),
}


def _price(where: str, field: str, usd: float) -> Price:
    entry = {field: usd}
    pricing = {"default": entry} if where == "default" else {"models": {"m-1": entry}}
    found = load_price_table(parse_settings({"pricing": pricing})).lookup("local", "m-1")
    assert found is not None
    return found


@pytest.mark.parametrize("field", list(UNIT_FIELDS))
@pytest.mark.parametrize("where", ["default", "models"])
def test_unit_price_fields_from_yaml(where: str, field: str) -> None:
    usd, per_unit = UNIT_FIELDS[field]
    price = _price(where, field, usd)
    assert cost_micro_usd(Usage(units=7), price) == 7 * per_unit
    assert cost_micro_usd(Usage(units=7), _price(where, field, usd * 2)) == 14 * per_unit
    # A unit price alone needs no token price, and tokens are then free.
    assert (price.input, price.output) == (0, 0)
    assert cost_micro_usd(Usage(prompt_tokens=1_000_000, units=0), price) == 0


def test_unit_and_token_prices_add_up() -> None:
    settings = parse_settings(
        {"pricing": {"models": {"m": {"input": 1.0, "output": 2.0, "per_image": 0.01}}}}
    )
    price = load_price_table(settings).lookup("p", "m")
    assert price is not None and price.unit == "image"
    assert cost_micro_usd(Usage(prompt_tokens=100, completion_tokens=10, units=2), price) == 100 + 20 + 20_000


def test_two_unit_prices_on_one_model_are_refused() -> None:
    with pytest.raises(ConfigError, match="at most one unit price"):
        parse_settings({"pricing": {"models": {"m": {"per_image": 0.01, "per_second": 0.1}}}})


def test_a_token_price_still_needs_its_input() -> None:
    with pytest.raises(ConfigError, match="input"):
        parse_settings({"pricing": {"models": {"m": {"output": 1.0}}}})


def test_the_shipped_price_table_prices_the_openai_family() -> None:
    table = load_price_table(parse_settings({"pricing": {"file": "config/pricing.yaml"}}))
    whisper, tts, dalle = (table.lookup("openai", m) for m in ("whisper-1", "tts-1", "dall-e-3"))
    assert whisper is not None and cost_micro_usd(Usage(units=60), whisper) == 6_000  # $0.006 a minute
    assert tts is not None and cost_micro_usd(Usage(units=1_000_000), tts) == 15_000_000
    assert dalle is not None and cost_micro_usd(Usage(units=1), dalle) == 40_000


@pytest.mark.parametrize(
    ("size", "name", "seconds"),
    [
        (160_000, "talk.mp3", 10),
        (160_000, "talk.MP3", 10),
        (80_000, "voice.ogg", 10),
        (320_000, "memo.wav", 10),
        (160_000, None, 10),  # unknown format: mp3's bitrate
        (1, "x.mp3", 1),  # never zero
    ],
)
def test_audio_seconds_from_the_size_and_format(size: int, name: str | None, seconds: int) -> None:
    assert audio_seconds(size, name) == seconds


def test_the_reservation_covers_the_worst_case_units_at_the_dearest_price() -> None:
    cheap, dear = (
        Price(0, 0, 0, 0, unit="image", per_million_units=20_000 * 10**6),
        Price(0, 0, 0, 0, unit="image", per_million_units=40_000 * 10**6),
    )
    units = worst_units(Endpoint.IMAGES, {"n": 3, "prompt": "x"}, 0)
    plan = unit_plan((), Prompt(100), units, [cheap, dear])
    assert units == 3 and plan.cost_micro_usd == 3 * 40_000 and plan.max_output_tokens == 0
    # An upload reserves its seconds at the lowest bitrate: never less than the size-based estimate.
    size = 1_000_000
    assert worst_units(Endpoint.TRANSCRIPTIONS, {}, size) >= audio_seconds(size, "a.ogg")
    assert worst_units(Endpoint.SPEECH, {"input": "hello"}, 0) == 5
