"""Operator alerts (``alerts:``): a provider going down, a failed sync, the ledger writer falling behind
and copies of tenants' budget alerts reach the operator's webhook, signed, once, retried; ``alerts.on``
chooses which."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from support import ADMIN, AUTH, base_config

from proxy.config import parse_settings
from proxy.gateway import GATEWAY
from proxy.metering import alerts
from proxy.metering.alerts import Alerter, watch_ledger
from proxy.store import open_store
from proxy.testing.fake_provider import Behaviour, FakeProvider
from proxy.testing.gateway_process import free_port
from proxy.testing.webhook_receiver import WebhookReceiver

SECRET = "operator-webhook-secret-0123456789"
DOWN = Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}})


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


def config(fake: FakeProvider, hook: WebhookReceiver, **operator: Any) -> dict[str, Any]:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["breaker"] = {"failures": 2, "cooldown": "60s"}
    cfg["providers"]["aihubmix"]["sync"] = {"timeout": "1s"}
    cfg["alerts"] = {"webhook": f"{hook.url}/operator", **operator}
    return cfg


async def chat(client: Any, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        await resp.read()
        status: int = resp.status
        return status


async def settled(client: Any) -> None:
    """Every delivery this gateway started has finished (claimed, posted or given up)."""
    tasks = client.app[GATEWAY].alerts.tasks
    while tasks:
        await asyncio.wait(set(tasks))


async def take_down(client: Any, fake: FakeProvider) -> None:
    fake.script("dead", DOWN)
    for _ in range(4):  # 2 faults open the breaker; the rest find it open: still one outage
        await chat(client, "dead")
    await settled(client)


async def fail_sync(client: Any, fake: FakeProvider) -> None:
    down = Behaviour.json(500, {"error": {"message": "down", "type": "server_error"}})
    fake.gets["/api/v1/models"] = fake.gets["/v1/models"] = down
    resp = await client.post("/admin/providers/aihubmix/sync", headers=ADMIN)
    assert resp.status == 502
    await settled(client)


async def test_a_provider_down_is_posted_once_and_signed(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver
) -> None:
    cfg = config(fake, hook, secret=SECRET)
    client = await make_gateway(cfg)
    await take_down(client, fake)
    await take_down(client, fake)  # still down: the same outage, not posted again
    [posted] = hook.to("/operator")
    body = posted.body
    assert body["alert"] == "provider_down" and body["provider"] == "local" and body["model"] == "dead"
    assert str(body["id"]).startswith("provider_down/local/dead/")
    assert posted.signed_by(SECRET)
    assert not posted.signed_by(SECRET + "x")


async def test_without_a_secret_nothing_is_signed(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver
) -> None:
    cfg = config(fake, hook)
    client = await make_gateway(cfg)
    await take_down(client, fake)
    [posted] = hook.to("/operator")
    assert "X-Efflux-Signature" not in posted.headers


async def test_on_chooses_the_events_posted(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver
) -> None:
    cfg = config(fake, hook, on=["sync_failed"])
    client = await make_gateway(cfg)
    await take_down(client, fake)
    assert hook.to("/operator") == []  # logged only: provider_down is not in alerts.on
    await fail_sync(client, fake)
    [posted] = hook.to("/operator")
    assert posted.body["alert"] == "sync_failed" and posted.body["name"] == "aihubmix"


async def test_a_failing_webhook_is_retried(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    hook.fail_next = [500, 503]
    client = await make_gateway(config(fake, hook, secret=SECRET))
    await fail_sync(client, fake)
    assert hook.refused == 2
    [posted] = hook.to("/operator")
    assert posted.body["alert"] == "sync_failed" and posted.signed_by(SECRET)


async def test_a_budget_alert_goes_to_the_tenant_and_a_copy_to_the_operator(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver
) -> None:
    cfg = config(fake, hook, secret=SECRET)
    cfg["tenants"] = {
        "acme": {"budget": {"usd": 0.001}, "alerts": {"at": [0.01], "webhook": f"{hook.url}/acme"}}
    }
    client = await make_gateway(cfg)
    assert await chat(client, "m") == 200
    await settled(client)
    [tenant] = hook.to("/acme")
    [operator] = hook.to("/operator")
    assert "X-Efflux-Signature" not in tenant.headers  # the operator's secret is not the tenant's
    assert operator.signed_by(SECRET)
    assert operator.body == {**tenant.body, "alert": "budget"}


async def test_budget_copies_follow_on(make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver) -> None:
    cfg = config(fake, hook, on=["provider_down"])
    cfg["tenants"] = {
        "acme": {"budget": {"usd": 0.001}, "alerts": {"at": [0.01], "webhook": f"{hook.url}/acme"}}
    }
    client = await make_gateway(cfg)
    assert await chat(client, "m") == 200
    await settled(client)
    assert len(hook.to("/acme")) == 1 and hook.to("/operator") == []


@pytest.mark.parametrize(("threshold", "posted"), [("2s", 1), ("10s", 0)])
async def test_ledger_lag_past_the_threshold_is_posted_once_per_episode(
    hook: WebhookReceiver, threshold: str, posted: int
) -> None:
    settings = parse_settings(
        {"alerts": {"webhook": f"{hook.url}/operator", "ledger_lag_threshold": threshold}}
    )
    lags: list[float | None] = [None, 1.0, 5.0, 5.0, 5.0, 4.0]  # None: no writer has reported yet
    looked = asyncio.Event()

    def lag() -> float | None:
        if not lags:
            looked.set()
            return 1.0
        return lags.pop(0)

    async with aiohttp.ClientSession() as http:
        alerter = Alerter(http, {}, settings.alerts)
        watcher = asyncio.get_running_loop().create_task(watch_ledger(alerter, lag, poll=0))
        await looked.wait()
        watcher.cancel()
        await alerter.close()
    found = hook.to("/operator")
    assert len(found) == posted
    if posted:
        assert found[0].body["alert"] == "ledger_lag" and found[0].body["lag_seconds"] == 5.0


async def test_the_ledger_writer_reports_through_the_metrics(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in writer reports its lag through ``Metrics.ledger_writer``, as the ledger's writer does:
    the gauges show it and the gateway's watcher posts ``ledger_lag``."""
    monkeypatch.setattr(alerts, "LEDGER_POLL", 0.01)
    client = await make_gateway(config(fake, hook, ledger_lag_threshold="2s"))
    metrics = await (await client.get("/metrics")).text()
    assert "efflux_ledger_writer_lag_seconds" not in metrics  # no writer: no series
    client.app[GATEWAY].metrics.ledger_writer.report(5.0, 500)
    [posted] = await hook.wait_for(1)
    assert posted.body["alert"] == "ledger_lag"
    metrics = await (await client.get("/metrics")).text()
    assert "efflux_ledger_writer_lag_seconds 5.0" in metrics
    assert "efflux_ledger_writer_backlog 500.0" in metrics


async def test_with_the_store_unreachable_the_alert_is_posted_anyway(hook: WebhookReceiver) -> None:
    """No claim can be made: a rare duplicate is better than a lost alert."""
    port = free_port()  # nothing listens there
    settings = parse_settings(
        {
            "store": {"backend": "redis", "url": f"redis://127.0.0.1:{port}", "timeout": "200ms"},
            "alerts": {"webhook": f"{hook.url}/operator"},
        }
    )
    store = open_store(settings)
    async with aiohttp.ClientSession() as http:
        alerter = Alerter(http, {}, settings.alerts, store)
        alerter.operator("sync_failed", "sync_failed/somewhere", {"type": "sync", "name": "somewhere"})
        await alerter.close()
    await store.close()
    [posted] = hook.to("/operator")
    assert posted.body["alert"] == "sync_failed" and posted.body["name"] == "somewhere"
