"""Three gateway processes on one private Redis: a provider goes down (its breaker opens on each replica)
and a model sync fails (on each replica). The operator's webhook gets each alert exactly once, with a
valid signature; every replica says in its log whether it posted the alert or found it claimed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import orjson
import pytest
from redis_support import start_all
from support import ADMIN, AUTH, base_config

from proxy.testing.fake_provider import Behaviour, ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.redis_server import RedisServer
from proxy.testing.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.redis
SECRET = "operator-webhook-secret-0123456789"
KEYS = ("provider_down/local/dead", "sync_failed/aihubmix")  # how replicas name the two events
OUTCOMES = ("operator alert posted", "operator alert claimed elsewhere")


@pytest.fixture
def upstream() -> Iterator[ThreadedFakeProvider]:
    fake = ThreadedFakeProvider().start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


def outcomes(gateway: GatewayProcess) -> dict[str, str]:
    """Event key -> what this replica did with it, from its JSON log."""
    found: dict[str, str] = {}
    for line in gateway.log().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line being written, or not JSON
        if not isinstance(entry, dict):
            continue
        if entry.get("msg") in OUTCOMES:
            found[entry["key"]] = entry["msg"]
    return found


async def test_three_replicas_post_each_operator_alert_once(
    upstream: ThreadedFakeProvider, hook: WebhookReceiver, private_redis: RedisServer
) -> None:
    config = base_config(upstream.url)
    config["providers"]["local"]["breaker"] = {"failures": 2, "cooldown": "60s"}
    config["providers"]["aihubmix"]["sync"] = {"timeout": "2s"}
    config["store"] = {"backend": "redis", "url": private_redis.url, "prefix": f"t{uuid.uuid4().hex[:10]}"}
    config["secrets"] = {"key_secret": "replica-test-key-secret-0123456789abcdef"}
    config["alerts"] = {"webhook": f"{hook.url}/operator", "secret": SECRET}
    down = Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}})
    upstream.script("dead", down)
    upstream.gets["/api/v1/models"] = upstream.gets["/v1/models"] = down
    replicas = [GatewayProcess(config) for _ in range(3)]
    await asyncio.to_thread(start_all, replicas)
    try:
        async with aiohttp.ClientSession() as http:

            async def chat(gateway: GatewayProcess) -> int:
                body = {"model": "dead", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
                async with http.post(f"{gateway.url}/v1/chat/completions", json=body, headers=AUTH) as resp:
                    return resp.status

            async def sync(gateway: GatewayProcess) -> int:
                for _ in range(200):  # 409 while another replica's sync holds the lock
                    async with http.post(
                        f"{gateway.url}/admin/providers/aihubmix/sync", headers=ADMIN
                    ) as resp:
                        if resp.status != 409:
                            return resp.status
                    await asyncio.sleep(0.02)
                return 409

            # Two faults at once on each replica: each one's breaker opens.
            assert set(await asyncio.gather(*(chat(g) for g in replicas for _ in range(2)))) == {502}
            for gateway in replicas:
                assert await sync(gateway) == 502

        deadline = time.monotonic() + 20  # a bound on a hang, not a timing claim
        while any(set(outcomes(g)) != set(KEYS) for g in replicas):
            assert time.monotonic() < deadline, [outcomes(g) for g in replicas]
            await asyncio.sleep(0.05)
    finally:
        for gateway in replicas:
            gateway.stop()

    by_replica = [outcomes(g) for g in replicas]
    for key in KEYS:  # every replica saw both events; exactly one posted each
        assert [o[key] for o in by_replica].count("operator alert posted") == 1, by_replica
    posted = hook.to("/operator")
    assert sorted(str(d.body["alert"]) for d in posted) == ["provider_down", "sync_failed"]
    assert all(d.signed_by(SECRET) for d in posted)
    assert hook.refused == 0
