"""Spend and rejections per tenant and key: counted from the settled record and the refusal's error code,
with a cap on distinct label values (the rest are ``other``)."""

from __future__ import annotations

from typing import Any

import pytest
from observe.test_metrics import sample
from support import AUTH, base_config

from proxy.observe import metrics as metrics_module
from proxy.testing.fake_provider import FakeProvider

BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def key(name: str, tenant: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "tenant": tenant, "key": f"egw-{name}-key-0123456789", **extra}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer egw-{name}-key-0123456789"}


async def post(client: Any, headers: dict[str, str], body: dict[str, Any] = BODY) -> int:
    async with client.post("/v1/chat/completions", json=body, headers=headers) as resp:
        await resp.read()
        status: int = resp.status
        return status


async def test_spend_and_rejections_per_tenant_and_key(make_gateway: Any, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["keys"] += [key("narrow", "beta", models=["other-*"]), key("broke", "beta", budget={"usd": 0})]
    client = await make_gateway(cfg)
    for _ in range(3):
        assert await post(client, AUTH) == 200
    assert await post(client, auth("narrow")) == 403
    assert await post(client, auth("broke")) == 429
    assert await post(client, {"Authorization": "Bearer egw-unknown-key-0123456789"}) == 401
    text = await (await client.get("/metrics")).text()

    cost = sample(text, "efflux_cost_micro_usd_total", model="*", provider="local")
    assert cost > 0
    assert sample(text, "efflux_spend_micro_usd_total", tenant="acme", key="test") == cost
    rejected = "efflux_rejections_total"
    assert sample(text, rejected, tenant="beta", key="narrow", reason="model_not_allowed") == 1
    assert sample(text, rejected, tenant="beta", key="broke", reason="budget_exceeded") == 1
    assert sample(text, rejected, tenant="", key="", reason="invalid_api_key") == 1
    assert 'key="test",reason' not in text  # served requests are not rejections


async def test_past_the_cap_new_keys_are_other(
    make_gateway: Any, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module, "MAX_KEYS", 2)
    monkeypatch.setattr(metrics_module, "MAX_TENANTS", 1)
    cfg = base_config(fake.url)
    cfg["keys"] = [key(f"k{i}", f"t{i}") for i in range(4)]
    client = await make_gateway(cfg)
    for i in range(4):
        assert await post(client, auth(f"k{i}")) == 200
    text = await (await client.get("/metrics")).text()
    spend = [line for line in text.splitlines() if line.startswith("efflux_spend_micro_usd_total{")]
    labels = sorted(line.split("}")[0] for line in spend)
    assert labels == [
        'efflux_spend_micro_usd_total{key="k0",tenant="t0"',
        'efflux_spend_micro_usd_total{key="k1",tenant="other"',
        'efflux_spend_micro_usd_total{key="other",tenant="other"',
    ]
    total = sum(float(line.rsplit(" ", 1)[1]) for line in spend)
    assert total == sample(text, "efflux_cost_micro_usd_total", model="*", provider="local")
