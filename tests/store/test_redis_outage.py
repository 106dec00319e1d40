"""A dead or frozen Redis must never hold a request longer than the store timeout (+100 ms of slack): every
verb raises StoreUnavailable within that bound, and the store recovers once Redis is back.

Each test runs its own redis-server, since it stops or kills it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy.store.base import Admission, Scope, Settlement, StoreUnavailable
from proxy.store.records import Outcome, UsageRecord
from proxy.store.redis import RedisStore
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis

TIMEOUT = 0.1
BOUND = TIMEOUT + 0.1  # a correctness bound (no request waits on Redis longer), not a benchmark
KEY = Scope("key", "k1", "t1", rpm=1000, budget_micro_usd=10**9)
Verb = Callable[[RedisStore, int], Awaitable[object]]


@pytest.fixture
async def store(private_redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(private_redis.url, timeout=TIMEOUT, prefix="outage")
    yield store
    await store.close()


def _admit(store: RedisStore, n: int) -> Awaitable[object]:
    return store.admit(Admission(f"a{n}", (KEY,), 10, 10, time.time()))


def _settle(store: RedisStore, n: int) -> Awaitable[object]:
    item = UsageRecord(
        f"s{n}",
        "k1",
        "t1",
        "m",
        "p",
        "m",
        1,
        1,
        0,
        0,
        0,
        10,
        None,
        5,
        1,
        Outcome.COMPLETED,
        False,
        time.time(),
    )
    return store.settle(Settlement(item, (KEY,), 2, 10))


def _ping(store: RedisStore, n: int) -> Awaitable[object]:
    return store.ping()


def _spend(store: RedisStore, n: int) -> Awaitable[object]:
    return store.spend(KEY, time.time())


VERBS = [_admit, _settle, _ping, _spend]


async def _fails_within_bound(call: Awaitable[object]) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await call
    elapsed = time.monotonic() - started
    assert elapsed <= BOUND, f"took {elapsed:.3f} s"
    return elapsed


async def _serves(store: RedisStore, n: int) -> None:
    await store.ping()
    for verb in VERBS:
        await verb(store, n)


async def test_a_frozen_redis_fails_fast_and_the_store_recovers(
    private_redis: RedisServer, store: RedisStore
) -> None:
    await _serves(store, 0)  # connections are pooled and scripts loaded
    private_redis.freeze()
    try:
        for n, verb in enumerate(VERBS, start=1):
            await _fails_within_bound(verb(store, n))
        # Many requests at once: each opens a connection the frozen server accepts but never answers.
        started = time.monotonic()
        results = await asyncio.gather(*(_admit(store, 100 + n) for n in range(30)), return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert time.monotonic() - started <= BOUND
    finally:
        private_redis.thaw()
    await _serves(store, 200)


async def test_a_frozen_redis_fails_fast_on_the_first_connection(private_redis: RedisServer) -> None:
    private_redis.freeze()
    store = RedisStore(private_redis.url, timeout=TIMEOUT, prefix="outage")
    try:
        for n, verb in enumerate(VERBS):
            await _fails_within_bound(verb(store, n))
    finally:
        private_redis.thaw()
    await _serves(store, 10)
    await store.close()


async def test_a_killed_redis_fails_fast_and_the_store_recovers(
    private_redis: RedisServer, store: RedisStore
) -> None:
    await _serves(store, 0)
    private_redis.kill()
    for n, verb in enumerate(VERBS, start=1):
        await _fails_within_bound(verb(store, n))
    private_redis.start()  # same port, empty (no persistence): scripts must be loaded again
    await _serves(store, 100)
