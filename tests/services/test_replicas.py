"""Two replicas on one private Redis: what one changes (overlay route, provider switch, config reload,
synced catalogue) serves on the other within 2 s, a key created on one serves on the other at once, and a
schedule runs one sync per period overall."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from services.conftest import file_config, write
from support import ADMIN, AUTH, fixture, state

from proxy.store.redis import RedisStore
from proxy.tenancy.documents import KEY_DIGESTS
from proxy.tenancy.lookup import KeyLookup
from proxy.testing.clock import FakeClock
from proxy.testing.fake_provider import FakeProvider
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis
SECRETS = {"key_secret": "replica-test-key-secret-0123456789abcdef"}
BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


@pytest.fixture
async def replicas(
    redis_server: RedisServer, fake: FakeProvider, tmp_path: Path, start_gateway: Any
) -> tuple[Any, Any, list[Path]]:
    """Replicas A and B, each with its own copy of the config file, sharing one Redis (a fresh prefix)."""
    store = {
        "backend": "redis",
        "url": redis_server.url,
        "prefix": f"t{uuid.uuid4().hex[:10]}",
        "timeout": "1s",
    }
    paths = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for path in paths:
        write(path, {**file_config(fake.url), "store": store, "secrets": SECRETS})
    a = await start_gateway(paths[0])
    b = await start_gateway(paths[1])
    return a, b, paths


async def chat(client: Any, model: str) -> int:
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={**BODY, "model": model})
    await resp.read()
    status: int = resp.status
    return status


async def within(seconds: float, check: Any) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_route_added_on_a_serves_on_b(replicas: tuple[Any, Any, list[Path]]) -> None:
    a, b, _ = replicas
    assert await chat(b, "added-route") == 404
    bad = await a.put("/admin/routes/added-route", headers=ADMIN, json={"targets": [{"provider": "nowhere"}]})
    error = (await bad.json())["error"]
    assert bad.status == 400 and error["param"] == "targets[0].provider" and "nowhere" in error["message"]

    resp = await a.put(
        "/admin/routes/added-route", headers=ADMIN, json={"targets": [{"provider": "local", "model": "m1"}]}
    )
    assert resp.status == 200
    assert await chat(a, "added-route") == 200  # the writing replica serves it before answering
    took = await within(2.0, lambda: _is(chat(b, "added-route"), 200))
    assert took < 2.0
    listed = await (await b.get("/admin/routes", headers=ADMIN)).json()
    assert {"model": "added-route", "source": "overlay"}.items() <= next(
        r for r in listed["data"] if r["model"] == "added-route"
    ).items()

    yaml_route = await a.put("/admin/routes/m1", headers=ADMIN, json={"targets": [{"provider": "local"}]})
    assert yaml_route.status == 400  # YAML wins over the overlay: refused rather than silently shadowed
    assert (await a.delete("/admin/routes/added-route", headers=ADMIN)).status == 204
    await within(2.0, lambda: _is(chat(b, "added-route"), 404))


async def test_provider_switch_and_reload_reach_the_other_replica(
    replicas: tuple[Any, Any, list[Path]], fake: FakeProvider
) -> None:
    a, b, paths = replicas
    resp = await a.patch("/admin/providers/local", headers=ADMIN, json={"enabled": False})
    assert resp.status == 200 and (await resp.json())["serving"] is False
    await within(2.0, lambda: _is(chat(b, "m1"), 404))  # out of service everywhere, no restart
    bad = await a.patch("/admin/providers/local", headers=ADMIN, json={"api_key": "sk-plain-secret"})
    assert bad.status == 400 and (await bad.json())["error"]["param"] == "api_key"
    assert (await a.delete("/admin/providers/local", headers=ADMIN)).status == 204
    await within(2.0, lambda: _is(chat(b, "m1"), 200))

    for path in paths:  # a config deploy writes every replica's file; one reload call is enough
        config = file_config(fake.url, price=3.0)
        config["store"], config["secrets"] = state(a).snapshot.settings.store.model_dump(), SECRETS
        write(path, config)
    resp = await a.post("/admin/reload", headers=ADMIN)
    assert resp.status == 200, await resp.text()

    async def b_reloaded() -> bool:
        price = state(b).snapshot.price("local", "m1")
        return price is not None and price.input == 3_000_000

    assert await within(2.0, b_reloaded) < 2.0


async def test_synced_catalogue_is_shared(replicas: tuple[Any, Any, list[Path]], fake: FakeProvider) -> None:
    a, b, _ = replicas
    fake.gets["/v1/models"] = fixture("openai/models-list.json")
    resp = await a.post("/admin/providers/local/sync", headers=ADMIN)
    assert resp.status == 200 and "gpt-4o" in (await resp.json())["added"]

    async def b_lists() -> bool:
        listed = await (await b.get("/v1/models", headers=AUTH)).json()
        return any(m["id"] == "local/gpt-4o" for m in listed["data"])

    await within(2.0, b_lists)
    detail = await (await b.get("/admin/providers/local", headers=ADMIN)).json()
    assert detail["sync_status"]["runs"] == 1 and detail["models"] == 10


async def _is(call: Any, expected: int) -> bool:
    return bool(await call == expected)


async def test_a_schedule_runs_one_sync_per_period_across_replicas(
    redis_server: RedisServer, fake: FakeProvider, tmp_path: Path, start_gateway: Any
) -> None:
    store = {
        "backend": "redis",
        "url": redis_server.url,
        "prefix": f"t{uuid.uuid4().hex[:10]}",
        "timeout": "1s",
    }
    config = {**file_config(fake.url), "store": store, "secrets": SECRETS}
    config["providers"]["local"]["sync"] = {"every": 1.0}
    fake.gets["/v1/models"] = fixture("openai/models-list.json")
    clients = []
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.yaml", config)
        clients.append(await start_gateway(tmp_path / f"{name}.yaml"))
    await asyncio.sleep(3.5)  # three replicas, each looking every second
    fetched = sum(1 for r in fake.received if r.path == "/v1/models")
    status = (await (await clients[0].get("/admin/providers/local", headers=ADMIN)).json())["sync_status"]
    # one fetch per run, and no more runs than periods (three replicas would make up to 3 per period)
    assert fetched == status["runs"] and 2 <= status["runs"] <= 4, (fetched, status)


class CountingRedisStore(RedisStore):
    """The Redis store, counting the key lookups by digest it serves."""

    digest_reads = 0

    async def get_doc(self, kind: str, id: str) -> bytes | None:
        if kind == KEY_DIGESTS:
            self.digest_reads += 1
        return await super().get_doc(kind, id)


async def test_a_new_key_serves_on_b_at_once_and_unknown_keys_stay_off_redis(
    redis_server: RedisServer, fake: FakeProvider, tmp_path: Path, start_gateway: Any
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    store = {"backend": "redis", "url": redis_server.url, "prefix": prefix, "timeout": "1s"}
    for name in ("a", "b"):
        write(tmp_path / f"{name}.yaml", {**file_config(fake.url), "store": store, "secrets": SECRETS})
    a = await start_gateway(tmp_path / "a.yaml")
    counted = CountingRedisStore(redis_server.url, timeout=1.0, prefix=prefix)
    b = await start_gateway(tmp_path / "b.yaml", store=counted)
    clock = FakeClock()
    state(b).keys = KeyLookup(clock=clock)  # time stands still: no read is refilled, no digest forgotten

    created = await (await a.post("/admin/keys", headers=ADMIN, json={"name": "fresh"})).json()
    # B's shared state refreshes every 0.25 s: on a loaded machine it may know the key already; if not,
    # the lookup must find it with one read.
    known = state(b).snapshot.keys.lookup(created["key"]) is not None
    assert await send(b, created["key"]) == 200  # the very next request, on the other replica
    assert counted.digest_reads == (0 if known else 1)

    for start in range(0, 5_000, 100):
        statuses = await asyncio.gather(*(send(b, f"egw-nope-{i}") for i in range(start, start + 100)))
        assert set(statuses) == {401}
    assert counted.digest_reads <= 1 + 50  # the burst of reads for misses, then none until it refills

    assert (await a.delete(f"/admin/keys/{created['id']}", headers=ADMIN)).status == 200
    await within(1.0, lambda: _is(send(b, created["key"]), 401))


async def send(client: Any, key: str) -> int:
    resp = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=BODY)
    await resp.read()
    return int(resp.status)
