"""Circuit breakers: the state machine, sharing between replicas through the store (memory and Redis), and
acceptance 2 (issue 6): a 503 storm from target A under load, scaled from 30 s down to a few seconds."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import ADMIN, AUTH, base_config

from proxy.config import BreakerConfig
from proxy.metering.alerts import Alerter
from proxy.observe.metrics import Metrics
from proxy.routing.breaker import FORGET_AFTER, Breakers, State
from proxy.routing.table import Choice
from proxy.store.base import Store
from proxy.store.memory import MemoryStore
from proxy.testing.clock import FakeClock
from proxy.testing.fake_provider import Behaviour, FakeProvider
from proxy.testing.redis_server import RedisServer

A = Choice("local", "model-a")
CONFIG = BreakerConfig(failures=3, cooldown=0.3)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        the_store: Store = MemoryStore()
    else:
        import uuid

        from proxy.store.redis import RedisStore

        server: RedisServer = request.getfixturevalue("redis_server")
        the_store = RedisStore(server.url, timeout=2.0, prefix=f"egwtest-{uuid.uuid4().hex[:10]}")
    yield the_store
    await the_store.close()


def replica(store: Store, clock: FakeClock) -> Breakers:
    return Breakers(store, Metrics(), Alerter(None, {}), clock=clock)


async def test_consecutive_failures_open_and_a_probe_closes(store: Store) -> None:
    clock = FakeClock()
    b = replica(store, clock)
    for _ in range(2):
        assert await b.admit(A, CONFIG)
        b.failure(A, CONFIG)
    b.success(A)  # not consecutive any more
    for _ in range(3):
        b.failure(A, CONFIG)
    assert b.get(A).state is State.OPEN and not await b.admit(A, CONFIG)
    assert b.metrics.alerts.labels("provider")._value.get() == 1
    clock.advance(0.35)
    assert await b.admit(A, CONFIG), "after the cooldown one request is the probe"
    assert not await b.admit(A, CONFIG), "only one probe at a time"
    b.failure(A, CONFIG)  # the probe failed: open again, no second alert
    assert b.get(A).state is State.OPEN and b.metrics.alerts.labels("provider")._value.get() == 1
    clock.advance(0.35)
    assert await b.admit(A, CONFIG)
    b.success(A)
    assert b.get(A).state is State.CLOSED and await b.admit(A, CONFIG)
    await b.close()


async def test_replicas_share_transitions_and_one_probe(store: Store) -> None:
    clock = FakeClock()
    one, two = replica(store, clock), replica(store, clock)
    for _ in range(3):
        one.failure(A, CONFIG)
    await one.close()  # the state document is written
    await two.refresh()
    assert two.get(A).state is State.OPEN, "a target one replica found dead is skipped by the others"
    assert not await two.admit(A, CONFIG)
    clock.advance(0.35)
    probes = [await one.admit(A, CONFIG), await two.admit(A, CONFIG)]
    assert probes.count(True) == 1, "one probe across replicas (the store's lock)"
    prober = one if probes[0] else two
    other = two if probes[0] else one
    clock.advance(0.05)  # the probe's round trip
    prober.success(A)
    await prober.close()
    await other.refresh()
    assert other.get(A).state is State.CLOSED


async def test_retry_after_skips_the_target() -> None:
    clock = FakeClock()
    b = replica(MemoryStore(), clock)
    b.retry_after(A, 0.2)
    assert not await b.admit(A, CONFIG) and 0 < b.wait(A) <= 0.2
    clock.advance(0.25)
    assert await b.admit(A, CONFIG)


async def test_a_tenant_credential_has_its_own_breaker(store: Store) -> None:
    """A tenant's own key failing (or asked to wait) parks that key only, on this replica: the shared
    key's breaker, its gauge, the provider alert and the store are untouched; the breaker is forgotten once
    the key works again, or once it has been idle long enough."""
    clock = FakeClock()
    one, two = replica(store, clock), replica(store, clock)
    own = "tenant-a:0123456789ab"
    for _ in range(3):
        one.failure(A, CONFIG, own)
    one.retry_after(A, 0.2, own)
    assert not await one.admit(A, CONFIG, own) and one.wait(A, own) > 0
    assert await one.admit(A, CONFIG) and one.wait(A) == 0, "the shared key is not parked"
    assert await one.admit(A, CONFIG, "tenant-b:ba9876543210")
    assert one.metrics.alerts.labels("provider")._value.get() == 0
    assert not one.metrics.breaker_state._metrics, "no gauge series per tenant key"
    assert [(b.name, b.credential) for b in one.all()] == [(f"local/model-a@{own}", own)]
    await one.close()
    assert await store.list_docs("breakers") == {}
    await two.refresh()
    assert two.all() == []
    clock.advance(0.35)
    assert await one.admit(A, CONFIG, own), "after the cooldown the tenant's key is probed"
    one.success(A, own)
    assert one.all() == [] and await one.admit(A, CONFIG, own)
    one.failure(A, CONFIG, own)
    one.forget_idle()
    assert len(one.all()) == 1
    clock.advance(FORGET_AFTER + 1)
    one.forget_idle()
    assert one.all() == []


async def test_closed_shared_breakers_are_forgotten_with_their_gauge_series(store: Store) -> None:
    """Behind a wildcard route every model name a client invents is a target: the breakers (and their
    gauge series) of those that failed once must not pile up. An open breaker is kept."""
    clock = FakeClock()
    b = replica(store, clock)
    invented = [Choice("local", f"made-up-{i}") for i in range(50)]
    for target in invented:
        b.failure(target, CONFIG)  # one fault each: still closed
    for _ in range(3):
        b.failure(A, CONFIG)  # open
    assert b.get(A).state is State.OPEN and len(b.all()) == 51
    clock.advance(0.35)
    assert await b.admit(A, CONFIG)
    b.success(A)  # closed again: its gauge series says 0
    assert ("local", "model-a") in {tuple(k) for k in b.metrics.breaker_state._metrics}
    b.forget_idle()
    assert len(b.all()) == 51, "nothing is idle yet"
    clock.advance(FORGET_AFTER + 1)
    b.forget_idle()
    assert b.all() == [] and not b.metrics.breaker_state._metrics
    for _ in range(3):
        b.failure(A, CONFIG)
    clock.advance(FORGET_AFTER + 1)
    b.forget_idle()
    assert [x.name for x in b.all()] == ["local/model-a"], "an open breaker is never forgotten"
    await b.close()


# -- acceptance 2 -------------------------------------------------------------------------------------
COOLDOWN = 1.0
STORM_SECONDS = 2.5
WORKERS = 16


def storm_config(fake: FakeProvider) -> dict[str, Any]:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["breaker"] = {"failures": 5, "cooldown": COOLDOWN}
    cfg["models"]["storm"] = {
        "targets": [{"provider": "local", "model": "model-a"}, {"provider": "backup", "model": "model-b"}]
    }
    cfg["models"]["b-only"] = {"targets": [{"provider": "backup", "model": "model-b"}]}
    return cfg


async def ask(client: TestClient[Any, Any], model: str) -> tuple[str, float]:
    started = time.perf_counter()
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        await resp.read()
        assert resp.status == 200, await resp.text()
        return resp.headers["x-efflux-provider"], time.perf_counter() - started


async def test_a_503_storm_opens_the_breaker_and_a_recovers(
    make_gateway: Callable[..., Any], fake: FakeProvider
) -> None:
    client = await make_gateway(storm_config(fake))
    fake.script("model-a", Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}}))
    sent = 0

    async def load(until: float) -> list[str]:
        nonlocal sent
        served: list[str] = []
        while time.monotonic() < until:
            sent += 1
            served.append((await ask(client, "storm"))[0])
        return served

    end = time.monotonic() + STORM_SECONDS
    served = [p for batch in await asyncio.gather(*(load(end) for _ in range(WORKERS))) for p in batch]
    assert set(served) == {"backup"}, "every request succeeded through B"
    a_attempts = fake.count("model-a")
    # 5 failures open it; then one probe per cooldown (plus requests already on their way when it opened)
    assert a_attempts <= 5 + WORKERS + STORM_SECONDS / COOLDOWN + 1, a_attempts

    metrics = await (await client.get("/metrics")).text()
    assert 'efflux_breaker_state{model="model-a",provider="local"} 1.0' in metrics
    assert 'efflux_alerts_total{type="provider"} 1.0' in metrics
    view = await (await client.get("/admin/breakers", headers=ADMIN)).json()
    assert [b["state"] for b in view["data"] if b["model"] == "model-a"] == ["open"]

    # Latency added by the open breaker: medians of sequential requests, storm route vs a B-only route.
    storm = [(await ask(client, "storm"))[1] for _ in range(60)]
    b_only = [(await ask(client, "b-only"))[1] for _ in range(60)]
    sent += 60
    added = statistics.median(storm) - statistics.median(b_only)
    medians = statistics.median(storm) * 1000, statistics.median(b_only) * 1000
    print(f"median storm {medians[0]:.2f} ms, B-only {medians[1]:.2f} ms")
    assert added < 0.010, f"{added * 1000:.1f} ms added"

    fake.script("model-a")  # A recovers: the generated answer again
    recovered = time.monotonic()
    while True:
        provider, _ = await ask(client, "storm")
        sent += 1
        if provider == "local":
            break
        assert time.monotonic() - recovered < COOLDOWN + 0.5, "A was not probed back within the cooldown"
        await asyncio.sleep(0.02)
    print(f"A served again {time.monotonic() - recovered:.2f} s after it recovered")

    upstream = fake.count("model-a") + fake.count("model-b")
    print(f"{sent} client requests, {upstream} upstream attempts, ratio {upstream / sent:.3f}")
    assert upstream / sent <= 1.2
