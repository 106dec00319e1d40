"""Issue 14, item 7: admission reserves images, audio and files at their worst case, text by its bytes,
so that concurrent requests cannot spend past a budget (README "Budgets": the bound on overshoot).

The budget race with image requests runs here on the memory store (a gateway in process) and in
``tests/e2e/test_redis_limits.py`` on Redis (gateway processes)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import (
    BILL,
    BUDGET,
    IMAGE_RACERS,
    KEY,
    PIXEL,
    VISION_PRICE,
    base_config,
    image,
    script_vision,
    state,
    vision_body,
)

from proxy.config import PriceConfig, ReserveConfig
from proxy.metering.meter import make_plan
from proxy.metering.pricing import Price, usd_to_micro
from proxy.metering.reserve import (
    AUDIO_BYTES_PER_TOKEN,
    FILE_BYTES_PER_TOKEN,
    IMAGE_TOKENS,
    MAX_PROMPT_ESTIMATE,
    TEXT_BYTES_PER_TOKEN,
)
from proxy.plugin import JSONObject
from proxy.store.base import Period, Scope
from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import FakeProvider

PRICE = Price(input=usd_to_micro(1.0), output=usd_to_micro(2.0), cached_input=0, cache_write=0)
PHOTO = "data:image/jpeg;base64," + "A" * 30_000


@dataclass
class Body:
    obj: JSONObject
    max_tokens: int | None = 10
    n: int = 1
    size: int = field(init=False)

    def __post_init__(self) -> None:
        import orjson

        self.size = len(orjson.dumps(self.obj))


def chat(*parts: JSONObject) -> JSONObject:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, *parts]}],
    }


def test_an_image_is_reserved_at_its_worst_case_whatever_its_size() -> None:
    for url in (PIXEL, PHOTO, "https://example.com/cat.png"):
        body = Body(chat(image(url)))
        plan = make_plan((), body, [PRICE], 100)
        text = (body.size - len(url)) // TEXT_BYTES_PER_TOKEN + 1
        assert plan.prompt_tokens == text + IMAGE_TOKENS, url
        assert plan.cost_micro_usd == plan.prompt_tokens * 1 + 10 * 2


def test_a_models_own_image_tokens_override_the_default() -> None:
    dear = Price(input=PRICE.input, output=PRICE.output, cached_input=0, cache_write=0, image_tokens=48_000)
    body = Body(chat(image(PIXEL), image(PIXEL)))
    plan = make_plan((), body, [PRICE, dear], 100)
    text = (body.size - 2 * len(PIXEL)) // TEXT_BYTES_PER_TOKEN + 1
    assert plan.prompt_tokens == text + 2 * 48_000
    assert plan.cost_micro_usd == (text + 2 * 48_000) * 1 + 10 * 2


def test_audio_and_files_are_reserved_by_their_size() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "B" * 3200, "format": "wav"}}
    pdf = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + "C" * 900},
    }
    body = Body(chat(audio, pdf))
    plan = make_plan((), body, [PRICE], 100)
    media_bytes = 3200 + len(pdf["file"]["file_data"])  # type: ignore[index]
    text = (body.size - media_bytes) // TEXT_BYTES_PER_TOKEN + 1
    audio_tokens = -(-3200 // AUDIO_BYTES_PER_TOKEN)
    file_tokens = -(-len(pdf["file"]["file_data"]) // FILE_BYTES_PER_TOKEN)  # type: ignore[index]
    assert plan.prompt_tokens == text + audio_tokens + file_tokens


def test_a_file_known_only_by_id_reserves_the_whole_context() -> None:
    ref = {"type": "file", "file": {"file_id": "file-abc"}}
    assert make_plan((), Body(chat(ref)), [PRICE], 100).prompt_tokens == MAX_PROMPT_ESTIMATE
    windowed = Price(input=1, output=1, cached_input=0, cache_write=0, context_length=128_000)
    assert make_plan((), Body(chat(ref)), [windowed], 100).prompt_tokens == 128_000


def test_anthropic_image_and_document_blocks_are_reserved_like_chats() -> None:
    """A /v1/messages body: an image block at image_tokens whatever its size, a document by its data,
    a document by URL at the whole context."""
    data = "B" * 30_000
    photo = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "C" * 900},
    }
    body = Body({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [photo, pdf]}]})
    text = (body.size - len(data) - 900) // TEXT_BYTES_PER_TOKEN + 1
    assert (
        make_plan((), body, [PRICE], 100).prompt_tokens == text + IMAGE_TOKENS + 900 // FILE_BYTES_PER_TOKEN
    )
    linked = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    by_url = Body({"model": "m", "messages": [{"role": "user", "content": [linked]}]})
    assert make_plan((), by_url, [PRICE], 100).prompt_tokens == MAX_PROMPT_ESTIMATE


def test_a_responses_bodys_input_images_and_files_are_reserved_at_their_worst_case() -> None:
    parts = [
        {"type": "input_text", "text": "what?"},
        {"type": "input_image", "image_url": PHOTO},
        {"type": "input_image", "file_id": "file-img"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "D" * 900},
    ]
    body = Body({"model": "m", "input": [{"role": "user", "content": parts}]})
    plan = make_plan((), body, [PRICE], 100)
    text = (body.size - len(PHOTO) - 900) // TEXT_BYTES_PER_TOKEN + 1
    assert plan.prompt_tokens == text + 2 * IMAGE_TOKENS + -(-900 // FILE_BYTES_PER_TOKEN)
    by_id = Body(
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}
    )
    assert make_plan((), by_id, [PRICE], 100).prompt_tokens == MAX_PROMPT_ESTIMATE


def test_plain_text_is_reserved_by_its_bytes_as_before() -> None:
    body = Body(
        {"model": "m", "messages": [{"role": "user", "content": "hello " * 100}]}, max_tokens=None, n=2
    )
    plan = make_plan((), body, [PRICE], default_max_tokens=100)
    assert (plan.prompt_tokens, plan.max_output_tokens) == (body.size // TEXT_BYTES_PER_TOKEN + 1, 200)


# -- the budget race with image requests, on the memory store ------------------------------------------


async def test_budget_race_with_image_requests_on_the_memory_store(
    make_gateway: Any, fake: FakeProvider
) -> None:
    """100 concurrent image requests against a budget of 10,000 micro-USD, each billed 1,115: spend
    never passes the budget (the provider bills each prompt under its reservation, so the documented
    overshoot bound is 0 here), and the ledger equals the provider's bill."""
    script_vision(fake, "vision")
    cfg = base_config(fake.url)
    cfg["pricing"]["models"] = {"vision": VISION_PRICE}
    cfg["keys"] = [{"name": "test", "tenant": "acme", "key": KEY,
                    "budget": {"usd": BUDGET / 1e6, "period": "total"}}]  # fmt: skip
    client: TestClient[Any, Any] = await make_gateway(cfg)
    auth = {"Authorization": f"Bearer {KEY}"}

    async def call() -> int:
        resp = await client.post("/v1/chat/completions", json=vision_body("vision"), headers=auth)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(call() for _ in range(IMAGE_RACERS)))
    served = statuses.count(200)
    assert served >= 1 and statuses.count(429) == IMAGE_RACERS - served
    store = state(client).store
    scope = Scope("key", "test", "acme", budget_micro_usd=BUDGET, period=Period.TOTAL)
    spend = await store.spend(scope, time.time())
    records = (await store.records(RecordQuery(limit=1000))).data
    billed = fake.count("vision") * BILL
    assert spend.spent_micro_usd <= BUDGET, spend
    assert spend.reserved_micro_usd == 0
    assert sum(r.cost_micro_usd for r in records) == billed == served * BILL == spend.spent_micro_usd


def test_the_reserve_settings_and_a_prices_image_tokens_change_the_reservation() -> None:
    """metering.reserve.{image_tokens, audio_bytes_per_token, file_bytes_per_token} and
    pricing.models.<name>.image_tokens each change what admission reserves."""
    audio = {"type": "input_audio", "input_audio": {"data": "B" * 3200, "format": "wav"}}
    data = "data:application/pdf;base64," + "C" * 900
    body = Body(chat(image(PIXEL), audio, {"type": "file", "file": {"file_data": data}}))
    text = (body.size - len(PIXEL) - 3200 - len(data)) // TEXT_BYTES_PER_TOKEN + 1
    settings = ReserveConfig(image_tokens=7, audio_bytes_per_token=8, file_bytes_per_token=2)
    plan = make_plan((), body, [PRICE], 100, settings)
    assert plan.prompt_tokens == text + 7 + 3200 // 8 + -(-len(data) // 2)
    priced = Price.of(PriceConfig(input=1.0, output=2.0, image_tokens=99))
    assert make_plan((), body, [priced], 100, settings).prompt_tokens == plan.prompt_tokens - 7 + 99


# -- the same settings set in the config reach a gateway's admission ------------------------------------

AUDIO = {"type": "input_audio", "input_audio": {"data": "B" * 3200, "format": "wav"}}
FILE_DATA = "data:application/pdf;base64," + "C" * 900
MEDIA_BODY = {
    "model": "vision",
    "max_tokens": 10,
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "what?"}, image(PIXEL), AUDIO,
            {"type": "file", "file": {"filename": "a.pdf", "file_data": FILE_DATA}},
        ]}
    ],
}  # fmt: skip
PRICED = {**VISION_PRICE, "image_tokens": 99}
# setting -> (where it goes in the config, how much the request's worst case moves, in tokens)
RESERVE_SETTINGS: dict[str, tuple[dict[str, Any], int]] = {
    "metering.reserve.image_tokens": ({"metering": {"reserve": {"image_tokens": 7}}}, 7 - IMAGE_TOKENS),
    "metering.reserve.audio_bytes_per_token": (
        {"metering": {"reserve": {"audio_bytes_per_token": 8}}},
        3200 // 8 - 3200 // AUDIO_BYTES_PER_TOKEN,
    ),
    "metering.reserve.file_bytes_per_token": (
        {"metering": {"reserve": {"file_bytes_per_token": 2}}},
        -(-len(FILE_DATA) // 2) - len(FILE_DATA) // FILE_BYTES_PER_TOKEN,
    ),
    "pricing.default.image_tokens": ({"pricing": {"default": PRICED}}, 99 - IMAGE_TOKENS),
    "pricing.models.vision.image_tokens": (
        {"pricing": {"default": VISION_PRICE, "models": {"vision": PRICED}}},
        99 - IMAGE_TOKENS,
    ),
}


async def worst_case(make_gateway: Any, fake: FakeProvider, sections: dict[str, Any]) -> int:
    """The worst case (micro-USD) a gateway built with ``sections`` reserves for ``MEDIA_BODY``, read from
    its refusal by a budget of one micro-USD (at one micro-USD per token: the tokens reserved)."""
    cfg = base_config(fake.url, pricing={"default": VISION_PRICE})
    cfg["keys"][0]["budget"] = {"usd": 0.000001, "period": "total"}
    cfg.update(sections)
    client: TestClient[Any, Any] = await make_gateway(cfg)
    resp = await client.post(
        "/v1/chat/completions", json=MEDIA_BODY, headers={"Authorization": f"Bearer {KEY}"}
    )
    error = (await resp.json())["error"]
    assert resp.status == 429 and error["code"] == "budget_exceeded", error
    found = re.search(r"worst case \(\$(\d+\.\d{6})\)", error["message"])
    assert found is not None, error["message"]
    return usd_to_micro(float(found.group(1)))


@pytest.mark.parametrize("setting", RESERVE_SETTINGS)
async def test_each_reserve_setting_from_the_config_moves_the_worst_case(
    make_gateway: Any, fake: FakeProvider, setting: str
) -> None:
    sections, moved = RESERVE_SETTINGS[setting]
    default = await worst_case(make_gateway, fake, {})
    assert await worst_case(make_gateway, fake, sections) - default == moved
    assert fake.count() == 0  # refused at admission: nothing was sent
