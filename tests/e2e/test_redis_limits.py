"""Limits and budgets hold across gateway processes sharing one Redis:
the budget race, RPM over several processes, and exactly one webhook per alert threshold.

Each topology runs the same tests: three gateway processes on one redis-server, one gateway with
``--workers 3`` (SO_REUSEPORT), and three gateway processes on a 3-master Redis Cluster. Everything runs
against real processes: no fake Redis, no mocks.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis_support import COST, chat, ledger, metered_config, script_costly, start_all
from support import BILL, BUDGET, IMAGE_RACERS, VISION_PRICE, script_vision, vision_body

from proxy.store.base import Period, Scope
from proxy.store.redis import RedisStore
from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

pytestmark = pytest.mark.redis

REPETITIONS = 20
RESPONSES_REPETITIONS = 5  # the same race on /v1/responses, on keys of its own
MESSAGES_REPETITIONS = 5  # and on /v1/messages
RACERS = 50
BUDGET_CALLS = 10  # the race key's budget: $0.010, ten calls of $0.001
RPM = 60
RPM_CALLS, RPM_SECONDS = 300, 10.0
ALERT_CALLS = 50  # the alert key's budget is exactly 50 calls: crosses 50, 80 and 100 %
TOPOLOGIES = ["processes", "workers", "cluster"]
VIEWER_KEY = "egw-viewer-key-0123456789"


def race_key(i: int) -> str:
    return f"egw-race-key-{i:02d}-0123456789"


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    for model in ("race", "rpm", "alerting"):
        script_costly(threaded_fake, model)
    script_vision(threaded_fake, "vision")
    return threaded_fake


@pytest.fixture(scope="module")
def hook() -> Iterator[ThreadedFakeProvider]:
    """The alert webhook receiver: records every POST it gets."""
    receiver = ThreadedFakeProvider().start_in_thread()
    yield receiver
    receiver.stop_thread()


@pytest.fixture(scope="module", params=TOPOLOGIES)
def deployment(
    request: pytest.FixtureRequest,
    fake: ThreadedFakeProvider,
    hook: ThreadedFakeProvider,
    tmp_path_factory: Any,
) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(gateway URLs, store settings) of one topology, all of its gateways started and ready."""
    topology = request.param
    # the session's private server or cluster: the fresh prefix below is this deployment's clean state
    cluster = topology == "cluster"
    url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
    journal = tmp_path_factory.mktemp("journal") / "j"
    store = {"backend": "redis", "url": url, "cluster": cluster, "timeout": "1s",
             "prefix": f"e2e{uuid.uuid4().hex[:8]}", "journal": str(journal)}  # fmt: skip
    config = metered_config(fake.url, store, ["race", "rpm", "alerting"])
    config["pricing"]["models"]["vision"] = VISION_PRICE
    config["keys"] = [
        {"name": f"race-{i}", "tenant": "racers", "key": race_key(i), "models": ["race"],
         "budget": {"usd": BUDGET_CALLS * COST / 1e6, "period": "total"}}
        for i in range(REPETITIONS + RESPONSES_REPETITIONS + MESSAGES_REPETITIONS)
    ]  # fmt: skip
    config["keys"] += [
        {"name": "rpm", "tenant": "paced", "key": "egw-rpm-key-0123456789", "limits": {"rpm": RPM}},
        {"name": "alerted", "tenant": "watched", "key": "egw-alerted-key-0123456789",
         "budget": {"usd": ALERT_CALLS * COST / 1e6, "period": "monthly"}},
        {"name": "viewer", "tenant": "viewers", "key": VIEWER_KEY,
         "budget": {"usd": BUDGET / 1e6, "period": "total"}},
    ]  # fmt: skip
    config["tenants"] = {"watched": {"alerts": {"at": [0.5, 0.8, 1.0], "webhook": f"{hook.url}/alerts"}}}
    if topology == "workers":
        gateways = [GatewayProcess(config, workers=3)]
    else:
        gateways = [GatewayProcess(config) for _ in range(3)]
    try:
        start_all(gateways)
        yield [g.url for g in gateways], store
    finally:
        for gateway in gateways:
            gateway.stop()
            gateway._dir.cleanup()
        shutil.rmtree(Path(journal).parent, ignore_errors=True)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # A new connection per call, so that --workers spreads calls over its processes.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


def inspect(store: dict[str, Any]) -> RedisStore:
    return RedisStore(store["url"], cluster=store["cluster"], prefix=store["prefix"], timeout=2.0)


async def test_budget_race(
    deployment: tuple[list[str], dict[str, Any]], fake: ThreadedFakeProvider, session: aiohttp.ClientSession
) -> None:
    """50 concurrent calls over the processes against a budget of 10: exactly 10 served, 40 refused with
    budget_exceeded, ledger == upstream usage == 10 calls, and spent + reserved never past the budget.
    Repeated on a fresh key each time: zero violations in REPETITIONS runs."""
    await budget_race(deployment, fake, session, "chat/completions", range(REPETITIONS))


async def test_budget_race_on_responses(
    deployment: tuple[list[str], dict[str, Any]], fake: ThreadedFakeProvider, session: aiohttp.ClientSession
) -> None:
    """The same race on /v1/responses (translated to chat for the fake upstream), on keys of its own."""
    reps = range(REPETITIONS, REPETITIONS + RESPONSES_REPETITIONS)
    await budget_race(deployment, fake, session, "responses", reps)


async def test_budget_race_on_messages(
    deployment: tuple[list[str], dict[str, Any]], fake: ThreadedFakeProvider, session: aiohttp.ClientSession
) -> None:
    """The same race on /v1/messages (translated to chat for the fake upstream), on keys of its own: a
    spent budget is Anthropic's rate_limit_error there."""
    first = REPETITIONS + RESPONSES_REPETITIONS
    await budget_race(deployment, fake, session, "messages", range(first, first + MESSAGES_REPETITIONS))


async def budget_race(
    deployment: tuple[list[str], dict[str, Any]],
    fake: ThreadedFakeProvider,
    session: aiohttp.ClientSession,
    endpoint: str,
    reps: range,
) -> None:
    urls, store_settings = deployment
    store = inspect(store_settings)
    violations: list[str] = []
    refused = "rate_limit_error" if endpoint == "messages" else "budget_exceeded"  # Anthropic's envelope
    try:
        for rep in reps:
            scope = Scope("key", f"race-{rep}", "racers", budget_micro_usd=BUDGET_CALLS * COST,
                          period=Period.TOTAL)  # fmt: skip
            upstream_before = fake.count("race")
            racing = asyncio.Event()
            watcher = asyncio.create_task(_watch_commitment(store, scope, racing))
            results = await asyncio.gather(
                *(chat(session, urls[i % len(urls)], race_key(rep), "race", endpoint) for i in range(RACERS))
            )
            racing.set()
            peak = await watcher
            statuses = Counter((status, code) for status, code, *_ in results)
            served = statuses[(200, None)]
            records = await ledger(session, urls[0], key=f"race-{rep}")
            upstream = fake.count("race") - upstream_before
            spend = await store.spend(scope, time.time())
            problems = [
                f"served {served}" if served != BUDGET_CALLS else "",
                f"endpoints {[r['endpoint'] for r in records]}"
                if any(r["endpoint"] != endpoint for r in records)
                else "",
                f"refusals {statuses}" if statuses[(429, refused)] != RACERS - BUDGET_CALLS else "",
                f"{len(records)} records" if len(records) != served else "",
                f"ledger {sum(r['cost_micro_usd'] for r in records)} != upstream {upstream * COST}"
                if sum(r["cost_micro_usd"] for r in records) != upstream * COST or upstream != served
                else "",
                f"spend {spend}"
                if (spend.spent_micro_usd, spend.reserved_micro_usd) != (served * COST, 0)
                else "",
                f"peak commitment {peak}" if peak > BUDGET_CALLS * COST else "",
            ]
            violations += [f"repetition {rep}: {p}" for p in problems if p]
    finally:
        await store.close()
    assert violations == []


async def test_budget_race_with_image_requests(
    deployment: tuple[list[str], dict[str, Any]], fake: ThreadedFakeProvider, session: aiohttp.ClientSession
) -> None:
    """100 concurrent image requests over the processes against a budget of 10,000 micro-USD, each billed
    1,115 by the provider: spend never passes the budget (the documented overshoot bound is 0 here: the
    provider bills each prompt under its reservation), and the ledger equals the provider's bill."""
    urls, store_settings = deployment
    store = inspect(store_settings)
    scope = Scope("key", "viewer", "viewers", budget_micro_usd=BUDGET, period=Period.TOTAL)
    upstream_before = fake.count("vision")
    racing = asyncio.Event()
    watcher = asyncio.create_task(_watch_commitment(store, scope, racing))

    async def call(i: int) -> int:
        async with session.post(
            f"{urls[i % len(urls)]}/v1/chat/completions",
            json=vision_body("vision"),
            headers={"Authorization": f"Bearer {VIEWER_KEY}"},
        ) as resp:
            await resp.read()
            return resp.status

    try:
        statuses = await asyncio.gather(*(call(i) for i in range(IMAGE_RACERS)))
        racing.set()
        peak = await watcher
        served = statuses.count(200)
        records = await ledger(session, urls[0], key="viewer")
        spend = await store.spend(scope, time.time())
    finally:
        await store.close()
    billed = (fake.count("vision") - upstream_before) * BILL
    assert served >= 1 and statuses.count(429) == IMAGE_RACERS - served
    assert peak <= BUDGET and spend.spent_micro_usd <= BUDGET, (peak, spend)
    assert spend.reserved_micro_usd == 0
    assert sum(r["cost_micro_usd"] for r in records) == billed == served * BILL == spend.spent_micro_usd


async def _watch_commitment(store: RedisStore, scope: Scope, done: asyncio.Event) -> int:
    """The highest spent + reserved seen while the race runs."""
    peak = 0
    while not done.is_set():
        spend = await store.spend(scope, time.time())
        peak = max(peak, spend.spent_micro_usd + spend.reserved_micro_usd)
        await asyncio.sleep(0.002)
    return peak


async def test_rpm_across_processes(
    deployment: tuple[list[str], dict[str, Any]], session: aiohttp.ClientSession
) -> None:
    """300 calls paced over 10 s against RPM 60: exactly 60 admitted (never more in any 60 s window),
    the rest 429 with Retry-After."""
    urls, _ = deployment
    start = time.monotonic()

    async def paced(i: int) -> tuple[int, str | None, float, dict[str, str]]:
        await asyncio.sleep(max(0.0, start + i * RPM_SECONDS / RPM_CALLS - time.monotonic()))
        return await chat(session, urls[i % len(urls)], "egw-rpm-key-0123456789", "rpm")

    results = await asyncio.gather(*(paced(i) for i in range(RPM_CALLS)))
    assert time.monotonic() - start < RPM_SECONDS + 5
    refused = [
        headers for status, code, _, headers in results if status == 429 and code == "rate_limit_exceeded"
    ]
    assert len(refused) == RPM_CALLS - RPM
    assert all(float(h["Retry-After"]) > 0 for h in refused)
    admitted = sorted(r["started_at"] for r in await ledger(session, urls[0], key="rpm"))
    assert len(admitted) == RPM == sum(1 for status, *_ in results if status == 200)
    assert max(sum(1 for t in admitted if s <= t < s + 60) for s in admitted) <= RPM


async def test_one_webhook_per_threshold(
    deployment: tuple[list[str], dict[str, Any]], hook: ThreadedFakeProvider, session: aiohttp.ClientSession
) -> None:
    """50 concurrent calls over the processes cross 50, 80 and 100 % of the key's budget: exactly one
    webhook each, whichever process settled the crossing call."""
    urls, _ = deployment
    before = len(hook.received)
    results = await asyncio.gather(
        *(
            chat(session, urls[i % len(urls)], "egw-alerted-key-0123456789", "alerting")
            for i in range(ALERT_CALLS)
        )
    )
    assert [status for status, *_ in results] == [200] * ALERT_CALLS

    def alerts() -> list[Any]:
        return [r.body for r in hook.received[before:] if r.path == "/v1/alerts"]

    deadline = time.monotonic() + 10
    while len(alerts()) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110 (another thread fills it)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # three polls of the feed: a duplicate would have arrived by now
    got = alerts()
    assert sorted(a["threshold"] for a in got) == [0.5, 0.8, 1.0], got
    eighty = next(a for a in got if a["threshold"] == 0.8)
    assert eighty["type"] == "budget" and eighty["scope"] == "key" and eighty["name"] == "alerted"
    assert (
        eighty["budget_micro_usd"] == ALERT_CALLS * COST
        and eighty["spent_micro_usd"] >= 0.8 * ALERT_CALLS * COST
    )
    assert eighty["period"] == Period.MONTHLY.window(time.time())[0]
    assert set(eighty) >= {
        "type",
        "scope",
        "name",
        "threshold",
        "period",
        "spent_micro_usd",
        "budget_micro_usd",
        "at",
    }
    assert "egw-" not in str(got)  # no key material
