"""Three replicas on one private Redis: a provider goes down (its breaker opens on each replica) and a
model sync fails (on each replica): the operator's webhook gets each alert exactly once, signed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from metering.test_operator_alerts import DOWN, SECRET, config, settled
from support import ADMIN, AUTH

from proxy.gateway import GATEWAY
from proxy.testing.fake_provider import Behaviour, FakeProvider
from proxy.testing.redis_server import RedisServer
from proxy.testing.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.redis


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


async def chat(client: Any, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        await resp.read()
        status: int = resp.status
        return status


async def test_three_replicas_post_each_operator_alert_once(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver, private_redis: RedisServer
) -> None:
    cfg = config(fake, hook, secret=SECRET)
    cfg["store"] = {"backend": "redis", "url": private_redis.url, "prefix": f"t{uuid.uuid4().hex[:10]}"}
    cfg["secrets"] = {"key_secret": "replica-test-key-secret-0123456789abcdef"}
    replicas = [await make_gateway(cfg) for _ in range(3)]

    # The provider goes down: every replica sees two faults at once, and each one's breaker opens.
    fake.script("dead", DOWN)
    statuses = await asyncio.gather(*(chat(r, "dead") for r in replicas for _ in range(2)))
    assert set(statuses) == {502}
    # A sync fails, on each replica in turn.
    down = Behaviour.json(500, {"error": {"message": "down", "type": "server_error"}})
    fake.gets["/api/v1/models"] = fake.gets["/v1/models"] = down
    for replica in replicas:
        for _ in range(100):  # 409 while the lock the last sync freed has not expired yet (1 ms)
            status = (await replica.post("/admin/providers/aihubmix/sync", headers=ADMIN)).status
            if status != 409:
                break
            await asyncio.sleep(0.01)
        assert status == 502
    for replica in replicas:
        await settled(replica)

    for replica in replicas:  # each replica raised both alerts itself...
        metrics = await (await replica.get("/metrics")).text()
        assert 'efflux_alerts_total{type="provider"} 1.0' in metrics
        assert 'efflux_alerts_total{type="sync"} 1.0' in metrics
        views = await (await replica.get("/admin/breakers", headers=ADMIN)).json()
        assert [b["state"] for b in views["data"] if b["model"] == "dead"] == ["open"]
        assert replica.app[GATEWAY].alerts.tasks == set()
    # ...and the operator got each exactly once, signed.
    posted = hook.to("/operator")
    assert sorted(str(d.body["alert"]) for d in posted) == ["provider_down", "sync_failed"]
    assert all(d.signed_by(SECRET) for d in posted)
    down_alert = next(d.body for d in posted if d.body["alert"] == "provider_down")
    assert down_alert["provider"] == "local" and down_alert["model"] == "dead"


async def test_a_budget_alert_reaches_the_tenant_and_the_operator_once(
    make_gateway: Any, fake: FakeProvider, hook: WebhookReceiver, private_redis: RedisServer
) -> None:
    cfg = config(fake, hook, secret=SECRET)
    cfg["store"] = {"backend": "redis", "url": private_redis.url, "prefix": f"t{uuid.uuid4().hex[:10]}"}
    cfg["secrets"] = {"key_secret": "replica-test-key-secret-0123456789abcdef"}
    cfg["tenants"] = {
        "acme": {"budget": {"usd": 0.001}, "alerts": {"at": [0.01], "webhook": f"{hook.url}/acme"}}
    }
    replicas = [await make_gateway(cfg) for _ in range(3)]
    assert await chat(replicas[0], "m") == 200
    await hook.wait_for(2)  # the alert feed hands the crossing to one replica, which posts both
    for replica in replicas:
        await settled(replica)
    [tenant], [operator] = hook.to("/acme"), hook.to("/operator")
    assert operator.body == {**tenant.body, "alert": "budget"} and operator.signed_by(SECRET)
