"""What only the Redis store can get wrong: TTLs on what it writes, one Cluster slot per tenant, and a
settlement applied by Redis whose reply never reached the gateway."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

import proxy.store
from proxy.store.base import Admission, Period, Scope, Settlement
from proxy.store.records import Outcome, RecordQuery, UsageRecord
from proxy.store.redis import RedisStore
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis

Backend = tuple[RedisStore, list[RedisServer]]
DAY_MS = 86_400_000
UNEXPIRING = ("ledger", "tenants")  # documented in proxy/store/redis.py, as is the "total" period


def record(
    rid: str, *, started_at: float, cost: int = 1000, key: str = "k1", tenant: str = "t1"
) -> UsageRecord:
    return UsageRecord(
        rid, key, tenant, "gpt-x", "openai", "gpt-x", 60, 40, 0, 0, 0, cost, None, 9, 3,
        Outcome.COMPLETED, False, started_at,
    )  # fmt: skip


async def _workload(store: RedisStore, tenants: list[str]) -> None:
    """Every kind of key the store writes: windows, budgets of each period, alerts, stale reservations."""
    now = time.time()
    for tenant in tenants:
        scopes = [Scope("tenant", tenant, tenant, rpm=100, tpm=100_000, budget_micro_usd=100_000)]
        scopes += [Scope("key", f"k-{p}", tenant, rpm=10, budget_micro_usd=10_000, period=p) for p in Period]
        for i, scope in enumerate(scopes[1:]):
            both = (scopes[0], scope)
            assert (await store.admit(Admission(f"{tenant}-r{i}", both, 100, 1000, now))).admitted
            item = record(f"{tenant}-r{i}", key=scope.name, tenant=tenant, started_at=now, cost=6000)
            assert await store.settle(Settlement(item, both, 100, 1000))
        # Admitted and never settled (a replica died): its reservation stays until its deadline.
        await store.admit(Admission(f"{tenant}-lost", (scopes[1],), 100, 1000, now))
        # Settled without admission (a replayed journal).
        await store.settle(
            Settlement(record(f"{tenant}-j", tenant=tenant, started_at=now), (scopes[0],), 0, 0)
        )


def _keys(nodes: list[RedisServer], prefix: str) -> dict[bytes, tuple[int, int]]:
    """Every key under ``prefix`` -> (node index, PTTL)."""
    found = {}
    for index, node in enumerate(nodes):
        with node.client() as client:
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                found[key] = (index, client.pttl(key))
    return found


def _kind(key: bytes) -> str:
    # The first "}" closes the tenant's tag (tenant names are escaped); request ids may contain anything.
    return key.split(b"}:", 1)[1].split(b":")[0].decode() if b"}" in key else key.split(b":")[-1].decode()


async def test_every_key_has_a_ttl_or_a_documented_reason(redis_backend: Backend) -> None:
    store, nodes = redis_backend
    await _workload(store, ["acme", "a{b}:c"])
    keys = _keys(nodes, store.prefix)
    kinds = {"req", "win", "tok", "bud", "exp", "alr", "alerts", "ledger", "tenants"}
    assert {_kind(k) for k in keys} == kinds
    for key, (_, pttl) in keys.items():
        if _kind(key) in UNEXPIRING or key.endswith(b":total"):
            assert pttl == -1, key
            continue
        assert pttl > 0, key
        ceilings = {"req": DAY_MS, "win": 61_000, "tok": 61_000, "alerts": 40 * DAY_MS}
        ceiling = ceilings.get(_kind(key), (31 + 7) * DAY_MS)
        assert pttl <= ceiling, (key, pttl)


async def test_each_tenant_lives_in_one_cluster_slot(redis_backend: Backend) -> None:
    store, nodes = redis_backend
    tenants = ["acme", "globex", "initech", "umbrella", "a{b}:c"]
    await _workload(store, tenants)
    slots: dict[bytes, set[int]] = {}
    holders: set[int] = set()
    for key, (node, _) in _keys(nodes, store.prefix).items():
        if b"{" in key:
            slots.setdefault(key.split(b"{", 1)[1].split(b"}", 1)[0], set()).add(key_slot(key))
            holders.add(node)
    assert len(slots) == len(tenants) and all(len(s) == 1 for s in slots.values()), slots
    if len(nodes) > 1:
        assert len(holders) > 1  # the tenants spread over masters, so records() below reads several
    page = await store.records(RecordQuery(limit=1000))
    assert {r.tenant for r in page.data} == set(tenants) and len(page.data) == (len(Period) + 1) * len(
        tenants
    )


def _owner(nodes: list[RedisServer], key: str) -> RedisServer:
    for node in nodes:
        with node.client() as client:
            try:
                client.exists(key)
            except redis.ResponseError:  # MOVED: another master serves this slot
                continue
            return node
    raise AssertionError(f"no node serves {key}")


def _send_and_hang_up(port: int, *parts: str | bytes) -> None:
    """Send one command and close without reading the reply: Redis applies it, the reply is lost."""
    encoded = [p.encode() if isinstance(p, str) else p for p in parts]
    command = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(command)


async def test_a_settlement_whose_reply_was_lost_counts_once(redis_backend: Backend) -> None:
    store, nodes = redis_backend
    now = time.time()
    key = Scope("key", "k1", "t1", budget_micro_usd=10_000)
    assert (await store.admit(Admission("r1", (key,), 100, 3000, now))).admitted
    item = Settlement(record("r1", started_at=now, cost=2000), (key,), 100, 3000)
    keys, args = store._settle_call(item)
    source = (Path(proxy.store.__file__).parent / "settle.lua").read_bytes()
    owner = _owner(nodes, keys[0])
    _send_and_hang_up(owner.port, "EVAL", source, str(len(keys)), *keys, *args)
    with owner.client() as client:
        for _ in range(200):
            if client.exists(keys[1]):
                break
            await asyncio.sleep(0.01)
        assert client.xlen(keys[1]) == 1  # the first attempt was applied
    assert await store.settle(item) == []  # the gateway's retry
    spend = await store.spend(key, now)
    assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (2000, 0)
    assert [r.request_id for r in (await store.records(RecordQuery(tenant="t1"))).data] == ["r1"]


async def test_the_alert_feed_hands_each_crossing_to_one_reader(redis_backend: Backend) -> None:
    store, _ = redis_backend
    now = time.time()
    key = Scope("key", "k:1", "t{1}", budget_micro_usd=10_000, alert_at=(0.5, 0.8))
    for i in range(10):  # 1000 each: crosses 50 % at the 5th, 80 % at the 8th
        assert (await store.admit(Admission(f"r{i}", (key,), 10, 1000, now))).admitted
        await store.settle(
            Settlement(record(f"r{i}", key="k:1", tenant="t{1}", started_at=now), (key,), 10, 1000)
        )
    first = await store.read_alerts("replica-a")
    assert await store.read_alerts("replica-b") == []  # handed out once
    assert [(a.crossing.threshold, a.crossing.spent_micro_usd) for a in first] == [(0.5, 5000), (0.8, 8000)]
    assert {(a.crossing.scope.kind, a.crossing.scope.name, a.crossing.scope.tenant) for a in first} == {
        ("key", "k:1", "t{1}")
    }
    await store.ack_alert(first[0])
    # The unacknowledged one is reclaimed by another reader only once it has been idle long enough.
    assert await store.read_alerts("replica-b", reclaim=True) == []


async def test_a_crossing_whose_settlement_reply_was_lost_is_still_in_the_feed(
    redis_backend: Backend,
) -> None:
    store, nodes = redis_backend
    now = time.time()
    key = Scope("key", "k1", "t1", budget_micro_usd=1000, alert_at=(1.0,))
    # The gateway registers the tenant (for readers of every tenant's feed) before its first settlement.
    await store.settle(Settlement(record("earlier", started_at=now, cost=0), (key,), 0, 0))
    assert (await store.admit(Admission("lost", (key,), 10, 1000, now))).admitted
    keys, args = store._settle_call(Settlement(record("lost", started_at=now), (key,), 10, 1000))
    source = (Path(proxy.store.__file__).parent / "settle.lua").read_bytes()
    owner = _owner(nodes, keys[0])
    _send_and_hang_up(owner.port, "EVAL", source, str(len(keys)), *keys, *args)
    for _ in range(200):
        alerts = await store.read_alerts("replica-a")
        if alerts:
            break
        await asyncio.sleep(0.01)
    assert [(a.crossing.threshold, a.crossing.period) for a in alerts] == [(1.0, key.period.window(now)[0])]
