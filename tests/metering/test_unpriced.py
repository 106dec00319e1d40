"""``pricing.unknown`` and ``providers.<name>.pricing_unknown``: what a model no price source knows does,
and the ``price_source`` every ledger record carries (through the admin records API).

Each test builds the gateway from a config, sends requests to the fake provider, and reads what the
client got, the ledger, ``/metrics`` and the alert log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from support import ADMIN, AUTH, base_config, state

from proxy.store.records import RecordQuery, UsageRecord
from proxy.testing.fake_provider import FakeProvider
from proxy.testing.webhook_receiver import WebhookReceiver

Make = Callable[..., Any]


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def unpriced_config(url: str, **pricing: Any) -> dict[str, Any]:
    cfg = base_config(url)
    cfg["pricing"] = pricing  # no pricing.default: a model no source knows has no price
    return cfg


async def records(client: Any) -> list[dict[str, Any]]:
    resp = await client.get("/admin/usage/records", headers=ADMIN)
    assert resp.status == 200
    data: list[dict[str, Any]] = (await resp.json())["data"]
    return data


async def test_refuse_is_the_default_and_answers_400(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway(unpriced_config(fake.url))
    resp = await client.post("/v1/chat/completions", json=chat("mystery-model"), headers=AUTH)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "has no price" in error["message"] and "pricing.unknown: allow" in error["message"]
    assert fake.count() == 0 and await records(client) == []


async def test_allow_serves_records_none_and_estimated_counts_and_alerts_once_per_model(
    make_gateway: Make, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_gateway(unpriced_config(fake.url, unknown="allow"))
    with caplog.at_level(logging.WARNING, logger="efflux.alerts"):
        for model in ("mystery-model", "mystery-model", "other-model"):
            resp = await client.post("/v1/chat/completions", json=chat(model), headers=AUTH)
            assert resp.status == 200
    ledger = await records(client)
    assert len(ledger) == 3
    for record in ledger:
        assert record["price_source"] == "none" and record["estimated"] is True
        assert record["cost_micro_usd"] == 0 and record["prompt_tokens"] > 0  # the usage is the provider's
    alerts = [r.fields["alert"] for r in caplog.records if r.name == "efflux.alerts"]  # type: ignore[attr-defined]
    assert sorted((a["type"], a["provider"], a["model"]) for a in alerts) == [
        ("unpriced", "local", "mystery-model"),
        ("unpriced", "local", "other-model"),
    ]
    metrics = await (await client.get("/metrics")).text()
    assert 'efflux_unpriced_requests_total{provider="local"} 3.0' in metrics
    assert 'efflux_alerts_total{type="unpriced"} 2.0' in metrics


@pytest.mark.parametrize(
    ("global_policy", "local_policy", "served"),
    [("refuse", "allow", True), ("allow", "refuse", False), ("allow", None, True)],
)
async def test_the_provider_setting_beats_the_global_one(
    make_gateway: Make, fake: FakeProvider, global_policy: str, local_policy: str | None, served: bool
) -> None:
    cfg = unpriced_config(fake.url, unknown=global_policy)
    if local_policy is not None:
        cfg["providers"]["local"]["pricing_unknown"] = local_policy
    client = await make_gateway(cfg)
    resp = await client.post("/v1/chat/completions", json=chat("mystery-model"), headers=AUTH)
    assert resp.status == (200 if served else 400)
    if not served:  # the other provider, at the global policy, is not asked: only local serves "*"
        assert fake.count() == 0


async def test_allow_falls_back_to_a_priced_target_first(make_gateway: Make, fake: FakeProvider) -> None:
    """An unpriced target is served only where allowed; a priced one keeps its price."""
    cfg = unpriced_config(fake.url, unknown="allow", models={"second": {"input": 1.0, "output": 2.0}})
    client = await make_gateway(cfg)
    resp = await client.post("/v1/chat/completions", json=chat("two-step"), headers=AUTH)
    assert resp.status == 200
    [record] = await records(client)
    assert (record["upstream_model"], record["price_source"], record["estimated"]) == ("first", "none", True)


async def test_each_record_names_the_source_that_priced_it(
    make_gateway: Make, fake: FakeProvider, tmp_path: Path
) -> None:
    (tmp_path / "prices.yaml").write_text("models:\n  from-file: {input: 2.0, output: 4.0}\n")
    cfg = unpriced_config(fake.url, file=str(tmp_path / "prices.yaml"), models={"inline": {"input": 1.0}})
    client = await make_gateway(cfg)
    for model in ("inline", "from-file", "openrouter/openai/gpt-3.5-turbo"):
        resp = await client.post("/v1/chat/completions", json=chat(model), headers=AUTH)
        assert resp.status == 200, await resp.text()
    sources = {r["upstream_model"]: (r["price_source"], r["estimated"]) for r in await records(client)}
    assert sources == {
        "inline": ("config", False),
        "from-file": ("file", False),
        "openai/gpt-3.5-turbo": ("genai-prices", False),  # OpenRouter's id, priced by the package
    }
    # what the Redis store keeps is the record's JSON: the field survives it
    stored = state(client).store
    page = await stored.records(RecordQuery())
    assert {UsageRecord.from_json(r.to_json()).price_source for r in page.data} == {
        "config",
        "file",
        "genai-prices",
    }


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.mark.parametrize("listed", [True, False])
async def test_the_operator_webhook_hears_of_each_unpriced_model_once(
    make_gateway: Make, fake: FakeProvider, hook: WebhookReceiver, listed: bool
) -> None:
    cfg = unpriced_config(fake.url, unknown="allow")
    cfg["alerts"] = {"webhook": f"{hook.url}/operator"}
    if not listed:
        cfg["alerts"]["on"] = ["provider_down"]
    client = await make_gateway(cfg)
    for model in ("mystery-model", "mystery-model", "other-model"):
        resp = await client.post("/v1/chat/completions", json=chat(model), headers=AUTH)
        assert resp.status == 200
    tasks = state(client).alerts.tasks
    while tasks:
        await asyncio.wait(set(tasks))
    posted = sorted((d.body["alert"], d.body["provider"], d.body["model"]) for d in hook.to("/operator"))
    expected = [("unpriced_model", "local", "mystery-model"), ("unpriced_model", "local", "other-model")]
    assert posted == (expected if listed else [])
