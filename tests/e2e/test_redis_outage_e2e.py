"""Redis killed and frozen under traffic, gateways as real processes:

- no call waits on Redis longer than the store timeout + 100 ms (measured by the client);
- ``fail_closed`` answers 503 ``metering_unavailable`` while Redis is gone, and serves again after;
- under either policy, every call served is in the ledger exactly once once Redis is back: settlements
  Redis could not take were journaled and replayed (``fail_open``: every call is served).

Redis runs with ``appendfsync always`` so that a restart after SIGKILL keeps what it acknowledged: the
ledger count can then be compared with the calls served.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis_support import COST, chat, ledger, metered_config, script_costly, start_all

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis

TIMEOUT = 0.1
BOUND = TIMEOUT + 0.1
CALLERS = 3  # one per gateway: the bound is about Redis, not about a CPU-starved test machine
KEY = "egw-outage-key-0123456789"


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    script_costly(threaded_fake, "outage")
    return threaded_fake


@pytest.fixture
def server(spawn_redis: Callable[..., RedisServer]) -> RedisServer:
    """A server of the test's own (it is killed and frozen), persisting every write as it comes."""
    private: RedisServer = spawn_redis("--appendonly", "yes", "--appendfsync", "always")
    return private


def gateways(
    fake: ThreadedFakeProvider, server: RedisServer, policy: str, journal: Path
) -> list[GatewayProcess]:
    store = {
        "backend": "redis",
        "url": server.url,
        "timeout": f"{int(TIMEOUT * 1000)}ms",
        "on_outage": policy,
        "prefix": f"out{uuid.uuid4().hex[:8]}",
        "journal": str(journal),
    }
    config = metered_config(fake.url, store, ["outage"])
    config["keys"] = [
        {"name": "outage", "tenant": "ops", "key": KEY, "budget": {"usd": 1000, "period": "total"}}
    ]
    return start_all([GatewayProcess(config) for _ in range(3)])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def traffic(
    session: aiohttp.ClientSession, urls: list[str], server: RedisServer
) -> list[tuple[str, Any]]:
    """Calls from CALLERS loops while Redis is up, killed, restarted, frozen, thawed; (phase, result) each."""
    phase = "up"
    results: list[tuple[str, Any]] = []
    running = True

    async def caller(n: int) -> None:
        i = n
        while running:
            at = phase
            results.append((at, await chat(session, urls[i % len(urls)], KEY, "outage")))
            i += 1

    callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
    try:
        await asyncio.sleep(0.5)
        phase = "killed"
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(0.8)
        phase = "restarting"
        await asyncio.to_thread(server.start)
        phase = "up again"
        await asyncio.sleep(0.8)
        phase = "frozen"
        server.freeze()
        await asyncio.sleep(0.8)
        phase = "thawed"
        server.thaw()
        await asyncio.sleep(0.8)
    finally:
        server.thaw()
        running = False
        await asyncio.gather(*callers)
    return results


async def settled_ledger(session: aiohttp.ClientSession, url: str, expected: int) -> list[dict[str, Any]]:
    """The key's records once the journals are replayed (they are, within a few seconds)."""
    deadline = time.monotonic() + 15
    while True:
        records = await ledger(session, url, key="outage")
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.2)


def journals(directory: Path) -> list[Path]:
    return list(directory.glob("j-*.jsonl"))


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
async def test_redis_killed_and_frozen_under_traffic(
    policy: str,
    fake: ThreadedFakeProvider,
    server: RedisServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    procs = gateways(fake, server, policy, tmp_path / "j")
    try:
        results = await traffic(session, [g.url for g in procs], server)
        slowest = max(elapsed for _, (_, _, elapsed, _) in results)
        by_phase = Counter((phase, status, code) for phase, (status, code, _, _) in results)
        print(f"\n{policy}: {len(results)} calls, slowest {slowest * 1000:.1f} ms, {dict(by_phase)}")
        assert slowest <= BOUND, f"a call took {slowest:.3f} s"
        assert {(status, code) for _, (status, code, _, _) in results} <= {
            (200, None),
            (503, "metering_unavailable"),
        }
        outage = sum(
            n for (phase, status, _), n in by_phase.items() if phase in ("killed", "frozen") and status == 503
        )
        if policy == "fail_closed":
            assert outage > 0
        else:
            assert outage == 0
        assert by_phase[("thawed", 200, None)] > 0 and by_phase[("up again", 200, None)] > 0
        served = sum(1 for _, (status, *_) in results if status == 200)
        records = await settled_ledger(session, procs[0].url, served)
        await asyncio.sleep(1.5)  # a replay counting twice would show by now
        records = await ledger(session, procs[0].url, key="outage")
        assert len(records) == served == len({r["request_id"] for r in records})
        assert sum(r["cost_micro_usd"] for r in records) == served * COST
        assert journals(tmp_path) == []
    finally:
        for proc in procs:
            proc.stop()
