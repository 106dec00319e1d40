"""The dashboard stays fast with a big ledger: 100,000 records, aggregated on the server.

The gateway runs in this process (so its memory store can be filled directly) on a loop in a thread;
Chromium measures first contentful paint and the time until the usage totals are on screen. The numbers
(and the admin API's own timing for the same aggregate) land in test-artifacts/ui/first-paint.json.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from support import ADMIN, base_config
from uisupport import ARTIFACTS, login, shot

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.store.base import Settlement
from proxy.store.memory import MemoryStore
from proxy.store.records import Outcome, UsageRecord

RECORDS = 100_000


async def fill(store: MemoryStore, now: float) -> None:
    rng = random.Random(8)
    providers = ["openrouter", "aihubmix", "openai", "anthropic", "local"]
    outcomes = [Outcome.COMPLETED] * 97 + [Outcome.UPSTREAM_ERROR, Outcome.REJECTED, Outcome.CLIENT_ABORTED]
    for i in range(RECORDS):
        prompt, completion = rng.randint(10, 4000), rng.randint(1, 1000)
        record = UsageRecord(
            request_id=f"req_{i:08d}",
            key=f"key-{i % 10}",
            tenant=f"tenant-{i % 3}",
            model=f"model-{rng.randint(0, 19)}",
            provider=providers[i % 5],
            upstream_model="up",
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_micro_usd=prompt + 2 * completion,
            provider_cost_micro_usd=None,
            latency_ms=rng.randint(50, 5000),
            ttfb_ms=None,
            outcome=rng.choice(outcomes),
            estimated=False,
            started_at=now - 86000 + i * 0.85,  # spread over the last 24 hours
        )
        await store.settle(Settlement(record, (), 0, 0))


@pytest.fixture(scope="module")
def big_gateway() -> Iterator[str]:
    store = MemoryStore(max_records=RECORDS)
    app = create_app(parse_settings(base_config("http://127.0.0.1:9/v1")), store=store)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        from aiohttp import web

        async def start() -> web.AppRunner:
            await fill(store, time.time())
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port.append(runner.addresses[0][1])
            return runner

        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(120), "the gateway with 100k records did not start"
    yield f"http://127.0.0.1:{port[0]}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def timed_get(url: str) -> tuple[float, Any]:
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=ADMIN), timeout=60) as resp:
        body = json.load(resp)
    return (time.perf_counter() - started) * 1000, body


def test_first_paint_with_100k_records(chromium: Any, big_gateway: str) -> None:
    context = chromium.new_context(base_url=big_gateway, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    login(page)
    page.wait_for_selector("#total-requests")
    # measured on a reload: the browser has the scripts cached as a returning operator would
    page.reload()
    page.wait_for_selector("#total-requests")
    timing = page.evaluate(
        """() => ({
            fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
            totals: performance.now(),
        })"""
    )
    page.wait_for_selector("#chart-tokens[data-drawn=true]")
    charts = page.evaluate("() => performance.now()")
    shot(page, "usage-100k")
    requests = int(page.get_attribute("#total-requests", "data-value") or 0)
    since = page.get_attribute("#range-info", "data-since")
    until = page.get_attribute("#range-info", "data-until")
    context.close()
    api_ms, api = timed_get(f"{big_gateway}/admin/usage?group_by=provider&since={since}&until={until}")
    result = {
        "records": RECORDS,
        "first_contentful_paint_ms": round(timing["fcp"], 1),
        "totals_on_screen_ms": round(timing["totals"], 1),
        "charts_drawn_ms": round(charts, 1),
        "admin_usage_group_by_provider_ms": round(api_ms, 1),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "first-paint.json").write_text(json.dumps(result, indent=2))
    print(result)
    assert requests == api["totals"]["requests"] > 90_000
    # The timings are reported (test-artifacts/first-paint.json), not asserted: a shared machine makes
    # any bound flaky. The page must still have painted.
    assert timing["fcp"] is not None and timing["fcp"] > 0, result
