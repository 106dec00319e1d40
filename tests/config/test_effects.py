"""Settings set in YAML change what the gateway does: one small test each for the settings that had no
test going through the config (the coverage table in ``test_coverage.py`` points here).

Each test builds the gateway from a config that sets the setting, then watches a request: what the client
gets, what the fake provider receives, or what the ledger records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from support import AUTH, KEY, base_config, state

from proxy.dataplane.spine import scopes
from proxy.store.base import Settlement
from proxy.store.records import Outcome, RecordQuery, UsageRecord
from proxy.testing.fake_provider import Behaviour, FakeProvider

Make = Callable[..., Any]
CHAT = {"model": "small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


async def post(client: Any, body: dict[str, Any] = CHAT) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    return resp.status, orjson.loads(await resp.read())


async def test_server_max_body_bytes_refuses_a_larger_body(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["server"]["max_body_bytes"] = 2000
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    status, body = await post(client, {**CHAT, "pad": "x" * 2000})
    assert status == 413 and "2000" in body["error"]["message"]
    assert fake.count("small") == 1


@pytest.mark.parametrize("enabled", [True, False])
async def test_server_access_log_switches_the_access_line(
    make_gateway: Make, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    lines: list[dict[str, object]] = []
    monkeypatch.setattr("proxy.app.access", lines.append)  # the sink only: the gateway runs as it is
    cfg = base_config(fake.url)
    cfg["server"]["access_log"] = enabled
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    assert [line["status"] for line in lines] == ([200] if enabled else [])


async def test_providers_api_key_is_sent_upstream(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["api_key"] = "sk-shared-local-key"
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    assert fake.received[-1].headers["Authorization"] == "Bearer sk-shared-local-key"


async def test_providers_headers_are_sent_upstream(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["headers"] = {"X-Team": "search"}
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    assert fake.received[-1].headers["X-Team"] == "search"


async def test_a_disabled_provider_serves_nothing(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["enabled"] = False
    client = await make_gateway(cfg)
    status, body = await post(client)
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, _ = await post(client, {**CHAT, "model": "two-step"})  # its other target still serves
    assert status == 200 and fake.count() == 1 and fake.received[-1].body["model"] == "second"  # type: ignore[index]


async def test_keys_key_name_and_tenant(make_gateway: Make, fake: FakeProvider) -> None:
    """The key's secret authenticates; its name and tenant are what the ledger records."""
    cfg = base_config(fake.url)
    cfg["keys"][0].update({"name": "web-app", "tenant": "shop"})
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    resp = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer egw-other"})
    assert resp.status == 401
    records = (await state(client).store.records(RecordQuery(tenant="shop"))).data
    assert [(r.key, r.tenant) for r in records] == [("web-app", "shop")]


async def test_keys_models_globs_limit_what_a_key_may_call(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["keys"][0]["models"] = ["sm*"]
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    status, body = await post(client, {**CHAT, "model": "large"})
    assert status == 403 and body["error"]["code"] == "model_not_allowed"


# The second request is refused by the limit set; 10 output tokens at $2/1M reserve 20 micro-USD or so.
LIMITS = {
    "rpm": {"limits": {"rpm": 1}},
    "tpm": {"limits": {"tpm": 40}},
    "budget": {"budget": {"usd": 0.00005}},
}


@pytest.mark.parametrize("limit", list(LIMITS))
@pytest.mark.parametrize("scope", ["key", "tenant"])
async def test_limits_and_budgets_from_yaml_refuse_past_them(
    make_gateway: Make, fake: FakeProvider, scope: str, limit: str
) -> None:
    cfg = base_config(fake.url)
    if scope == "key":
        cfg["keys"][0].update(LIMITS[limit])
    else:
        cfg["tenants"] = {"acme": LIMITS[limit]}
    client = await make_gateway(cfg)
    statuses = [(await post(client))[0] for _ in range(3)]
    assert statuses[0] == 200 and statuses[-1] == 429, statuses


async def test_tenant_alerts_at_and_webhook(make_gateway: Make, fake: FakeProvider) -> None:
    """A request spends about 2.5% of the tenant's budget: only a threshold set below that fires, and
    its alert is posted to the tenant's webhook."""
    cfg = base_config(fake.url)
    cfg["tenants"] = {
        "acme": {"budget": {"usd": 0.001}, "alerts": {"at": [0.01, 0.5], "webhook": f"{fake.url}/alerts"}}
    }
    client = await make_gateway(cfg)
    assert (await post(client))[0] == 200
    for _ in range(200):  # delivered in the background; a liveness bound, not a timing claim
        posted = [r.body for r in fake.received if r.path == "/v1/alerts"]
        if posted:
            break
        await asyncio.sleep(0.05)
    assert len(posted) == 1 and posted[0]["threshold"] == 0.01, posted  # type: ignore[index]


# 4096 alone exceeds the 100-token TPM: no wait would admit it, so it is a 400 `exceeds_limit`, not a 429.
@pytest.mark.parametrize(("default_max_tokens", "status"), [(10, 200), (4096, 400)])
async def test_metering_default_max_tokens_is_the_reserved_output(
    make_gateway: Make, fake: FakeProvider, default_max_tokens: int, status: int
) -> None:
    """A request without max_tokens reserves default_max_tokens of output against a 100-token TPM."""
    cfg = base_config(fake.url, metering={"default_max_tokens": default_max_tokens})
    cfg["keys"][0]["limits"] = {"tpm": 100}
    client = await make_gateway(cfg)
    body = {k: v for k, v in CHAT.items() if k != "max_tokens"}
    assert (await post(client, body))[0] == status


@pytest.mark.parametrize(("drain_timeout", "estimated"), [("200ms", True), ("10s", False)])
async def test_metering_drain_timeout_bounds_the_wait_for_usage(
    make_gateway: Make, fake: FakeProvider, drain_timeout: str, estimated: bool
) -> None:
    """The client leaves after the first event; the provider's usage comes 1 s later: a drain shorter
    than that estimates, a longer one records the provider's figures."""
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    chunks = [
        b'data: {"id":"d","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n',
        b'data: {"id":"d","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        b"data: " + orjson.dumps({"id": "d", "choices": [], "usage": usage}) + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    fake.script("drip", Behaviour(200, b"", "text/event-stream", {}, chunks, chunk_delay=0.5))
    cfg = base_config(fake.url, metering={"on_client_disconnect": "drain", "drain_timeout": drain_timeout})
    client = await make_gateway(cfg)
    resp = await client.post(
        "/v1/chat/completions", json={**CHAT, "model": "drip", "stream": True}, headers=AUTH
    )
    assert resp.status == 200
    await resp.content.readany()
    resp.close()  # the client goes away after the first event
    store = state(client).store
    for _ in range(200):  # settled once the drain ends; a liveness bound, not a timing claim
        records = (await store.records(RecordQuery(key="test"))).data
        if records:
            break
        await asyncio.sleep(0.05)
    assert len(records) == 1 and records[0].estimated is estimated
    assert (records[0].completion_tokens == 3) is not estimated


@pytest.mark.parametrize(("period", "counted"), [("total", True), ("daily", False)])
@pytest.mark.parametrize("scope", ["key", "tenant"])
async def test_budget_periods_from_yaml(
    make_gateway: Make, fake: FakeProvider, scope: str, period: str, counted: bool
) -> None:
    """Spend settled three days ago still counts against a ``total`` budget, not against a ``daily`` one."""
    cfg = base_config(fake.url)
    budget = {"budget": {"usd": 1.0, "period": period}}
    if scope == "key":
        cfg["keys"][0].update(budget)
    else:
        cfg["tenants"] = {"acme": budget}
    client = await make_gateway(cfg)
    gw = state(client)
    key = gw.snapshot.keys.lookup(KEY)
    assert key is not None
    charged = scopes(gw.snapshot, key)
    then = time.time() - 3 * 86400
    record = UsageRecord(
        "old-1", "test", "acme", "small", "local", "small", 10, 5, 0, 0, 0, 500, None, 3, 1,
        Outcome.COMPLETED, False, then,
    )  # fmt: skip
    await gw.store.settle(Settlement(record, charged, 15, 500, reserved=False))
    budgeted = next(s for s in charged if s.kind == scope)
    assert ((await gw.store.spend(budgeted, time.time())).spent_micro_usd == 500) is counted
