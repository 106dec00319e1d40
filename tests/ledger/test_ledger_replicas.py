"""Acceptance: three gateway processes on one Redis copy the ledger into PostgreSQL exactly once, through
client disconnects and a PostgreSQL crash and restart in the middle of the load.

Afterwards the table holds exactly one row per admitted request (the records in the Redis ledger streams,
the store's own truth), and its sums equal what the provider billed (calls answered x COST)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from e2e.redis_support import COST, KEY_SECRET, OUTPUT_TOKENS, metered_config, script_costly, start_all

from proxy.store.redis_scripts import tenant_base
from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.postgres_server import PostgresServer
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis

MODEL = "ledgered"
KEY = "egw-ledger-key-0123456789"
CALLS = 180
CRASH_AT = 60  # calls started before PostgreSQL is crashed
DOWN_FOR = 1.5  # seconds PostgreSQL stays down
DELAY = 0.2  # the provider's answer time: a caller leaving after LEAVE_AFTER is gone before it
LEAVE_AFTER = 0.05


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    script_costly(threaded_fake, MODEL, delay=DELAY)
    return threaded_fake


@pytest.fixture
def redis(spawn_redis: Callable[..., RedisServer]) -> RedisServer:
    server: RedisServer = spawn_redis()
    return server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def call(session: aiohttp.ClientSession, url: str, leave: bool) -> int | None:
    """One chat call; ``leave``: the client disconnects before the answer (None then)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": OUTPUT_TOKENS}
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        timeout = aiohttp.ClientTimeout(total=LEAVE_AFTER if leave else 30)
        async with session.post(
            f"{url}/v1/chat/completions", json=body, headers=headers, timeout=timeout
        ) as r:
            await r.read()
            return r.status
    except TimeoutError:
        return None


async def table(url: str) -> tuple[int, int, int, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        count, distinct, cost = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT request_id), coalesce(sum(cost_micro_usd), 0) FROM usage_records"
        )
        ids = {r[0] for r in await conn.fetch("SELECT request_id FROM usage_records")}
        return count, distinct, cost, ids
    finally:
        await conn.close()


async def test_three_replicas_copy_every_record_once_through_a_postgres_crash(
    fake: ThreadedFakeProvider,
    redis: RedisServer,
    private_postgres: PostgresServer,
    session: aiohttp.ClientSession,
) -> None:
    before = fake.count(MODEL)
    prefix = f"led{uuid.uuid4().hex[:8]}"
    database = private_postgres.url()
    store = {"backend": "redis", "url": redis.url, "prefix": prefix, "timeout": "500ms"}
    config: dict[str, Any] = metered_config(fake.url, store, [MODEL])
    config["keys"] = [{"name": "ledgered", "tenant": "ops", "key": KEY}]
    config["ledger"] = {"backend": "postgres", "url": database, "migrate_on_start": True}
    assert config["secrets"]["key_secret"] == KEY_SECRET
    gateways = start_all([GatewayProcess(config) for _ in range(3)])
    try:
        urls = [g.url for g in gateways]
        calls: list[asyncio.Task[int | None]] = []
        for n in range(CALLS):
            if n == CRASH_AT:
                await asyncio.to_thread(private_postgres.crash)
            if n == CRASH_AT + int(DOWN_FOR / 0.02):
                await asyncio.to_thread(private_postgres.start)
            calls.append(asyncio.create_task(call(session, urls[n % 3], leave=n % 4 == 0)))
            await asyncio.sleep(0.02)
        statuses = await asyncio.gather(*calls)
        assert statuses.count(200) == CALLS - CALLS // 4  # every caller who stayed was served
        await asyncio.sleep(DELAY * 3)  # the abandoned calls finish upstream and settle

        client = redis.client()
        try:
            stream = f"{tenant_base(prefix, 'ops')}:ledger"
            admitted = {orjson_id(fields[b"r"]) for _id, fields in client.xrange(stream, "-", "+")}
        finally:
            client.close()
        billed = fake.count(MODEL) - before
        assert len(admitted) == billed == CALLS  # each call admitted, answered upstream and settled once

        for _ in range(300):
            count, distinct, cost, ids = await table(database)
            if count >= len(admitted):
                break
            await asyncio.sleep(0.1)
        assert ids == admitted
        assert count == distinct == len(admitted)
        assert cost == billed * COST
    finally:
        for g in gateways:
            g.stop()


def orjson_id(raw: bytes) -> str:
    import orjson

    request_id: str = orjson.loads(raw)["request_id"]
    return request_id
