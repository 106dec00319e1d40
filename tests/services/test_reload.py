"""Hot reload: in-flight requests keep the snapshot they started with, bad configs are rejected while
traffic flows, and every trigger (admin API, SIGHUP, a changed file) swaps the config whole."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from services.conftest import file_config, write
from support import ADMIN, AUTH, state

from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import Behaviour, FakeProvider, generated

BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def slow_stream() -> Behaviour:
    """The fake's generated stream (6 words, usage at the end), one chunk every 0.15 s: about a second."""
    b = generated("/v1/chat/completions", {**BODY, "stream": True, "stream_options": {"include_usage": True}})
    b.chunk_delay = 0.15
    return b


async def reload(client: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/admin/reload", headers=ADMIN)
    return resp.status, await resp.json()


async def test_streams_in_flight_keep_their_price_across_a_reload(
    fake: FakeProvider, config_file: Path, start_gateway: Any
) -> None:
    client = await start_gateway(config_file)
    fake.script("m1", slow_stream())
    url = str(client.make_url("/v1/chat/completions"))

    async def one_stream(http: aiohttp.ClientSession) -> bytes:
        async with http.post(url, headers=AUTH, json={**BODY, "stream": True}) as resp:
            assert resp.status == 200
            return await resp.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        streams = [asyncio.ensure_future(one_stream(http)) for _ in range(200)]
        await _until(lambda: fake.count("m1") >= 200)  # every stream admitted and dispatched
        write(config_file, file_config(fake.url, price=10.0, routes=("m1",)))
        status, outcome = await reload(client)
        assert status == 200 and outcome["status"] == "reloaded", outcome
        assert not any(s.done() for s in streams)  # the reload happened with all 200 in flight
        fake.script("m1")  # new requests: the default, immediate answer
        resp = await client.post("/v1/chat/completions", headers=AUTH, json=BODY)
        assert resp.status == 200
        fresh_id = resp.headers["x-efflux-request-id"]
        resp = await client.post("/v1/chat/completions", headers=AUTH, json={**BODY, "model": "gone"})
        assert resp.status == 404
        bodies = await asyncio.gather(*streams)
    assert all(b.rstrip().endswith(b"data: [DONE]") for b in bodies)

    records = (await state(client).store.records(RecordQuery(limit=1000))).data
    assert len(records) == 201 and all(r.outcome.value == "completed" for r in records)
    for record in records:
        new = record.request_id == fresh_id
        price = 10 if new else 1  # input; output is twice that
        assert record.cost_micro_usd == record.prompt_tokens * price + record.completion_tokens * 2 * price, (
            record
        )
        assert record.completion_tokens == 6


BAD_CONFIGS: dict[str, tuple[str, str]] = {
    # name: (a change to the YAML text, what the error must name)
    "yaml-syntax": ("models: [unclosed\n", "line"),
    "unknown-plugin": ("providers:\n  local: {plugin: no_such_plugin}\n", "providers.local.plugin"),
    "unknown-provider-in-route": (
        "models:\n  m1: {targets: [{provider: nowhere}]}\n",
        "models.m1.targets[0].provider",
    ),
    "negative-price": ("pricing:\n  models: {m1: {input: -1}}\n", "pricing.models.m1.input"),
    "unknown-key": ("servre: {port: 1}\n", "servre"),
    "bad-duration": (
        "providers:\n  local: {plugin: openai_compatible, base_url: 'http://x', timeouts: {connect: soon}}\n",
        "providers.local.timeouts.connect",
    ),
    "missing-env-var": ("server: {admin_token: '${EFFLUX_TEST_SURELY_UNSET}'}\n", "EFFLUX_TEST_SURELY_UNSET"),
    "missing-price-file": ("pricing: {file: no-such-prices.yaml}\n", "pricing.file"),
    "bad-base-url": (
        "providers:\n  local: {plugin: openai_compatible, base_url: 'ftp://x'}\n",
        "providers.local: base_url",
    ),
    "duplicate-key": (
        "models: {a: {targets: [{provider: local}]}, a: {targets: [{provider: local}]}}\n",
        "duplicate key",
    ),
}


async def test_invalid_reloads_are_rejected_with_zero_failed_requests(
    fake: FakeProvider, config_file: Path, start_gateway: Any
) -> None:
    client = await start_gateway(config_file)
    good = config_file.read_text()  # noqa: ASYNC240 (a small local file, before any traffic)
    failures: list[int] = []
    served = 0
    stop = asyncio.Event()

    async def traffic() -> None:
        nonlocal served
        while not stop.is_set():
            resp = await client.post("/v1/chat/completions", headers=AUTH, json=BODY)
            served += 1
            if resp.status != 200:
                failures.append(resp.status)
            await resp.read()

    loops = [asyncio.ensure_future(traffic()) for _ in range(4)]
    try:
        for name, (change, named) in BAD_CONFIGS.items():
            # each bad file is the good one with one section broken
            write(config_file, _swap_section(good, change))
            status, body = await reload(client)
            assert status == 400, (name, body)
            assert body["error"]["code"] == "config_invalid", name
            assert named in body["error"]["message"], (name, body["error"]["message"])
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    assert failures == [] and served > 20
    assert state(client).snapshot.version == 0  # never swapped
    write(config_file, good)
    status, body = await reload(client)
    assert status == 200 and body["status"] == "unchanged"


def _swap_section(good: str, change: str) -> str:
    """The good YAML with the top-level sections ``change`` defines replaced by it (or, when ``change``
    does not parse on its own, with it appended)."""
    data = yaml.safe_load(good)
    try:
        replacement = yaml.safe_load(change)
    except yaml.YAMLError:
        replacement = None
    if not isinstance(replacement, dict):
        return good + change
    for section in replacement:
        data.pop(section, None)
    return yaml.safe_dump(data) + change


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
async def test_sighup_and_file_watch(fake: FakeProvider, config_file: Path, start_gateway: Any) -> None:
    client = await start_gateway(config_file)
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)  # ours: a stray HUP must not kill
    write(config_file, file_config(fake.url, price=5.0))
    os.kill(os.getpid(), signal.SIGHUP)
    await _until(lambda: _input_price(client) == 5.0)

    config = file_config(fake.url, price=7.0)
    config["server"]["watch_config"] = True
    write(config_file, config)
    os.kill(os.getpid(), signal.SIGHUP)
    await _until(lambda: _input_price(client) == 7.0)
    config = file_config(fake.url, price=8.0)
    config["server"]["watch_config"] = True
    write(config_file, config)  # no signal, no API call: the watch sees the file change
    await _until(lambda: _input_price(client) == 8.0)
    write(config_file, "models: [broken\n")  # a bad file on the watch: rejected, the old config serves
    await asyncio.sleep(1.2)
    assert _input_price(client) == 8.0
    assert (await client.post("/v1/chat/completions", headers=AUTH, json=BODY)).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'efflux_config_reloads_total{result="rejected"} 1.0' in metrics


def _input_price(client: Any) -> float | None:
    price = state(client).snapshot.price("local", "m1")
    return None if price is None else price.input / 1_000_000


async def _until(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


async def test_restart_only_settings_are_reported(
    fake: FakeProvider, config_file: Path, start_gateway: Any
) -> None:
    client = await start_gateway(config_file)
    config = file_config(fake.url)
    config["server"]["port"] = 9999
    config["server"]["max_connections"] = 50  # read by the listener at start
    write(config_file, config)
    status, body = await reload(client)
    assert status == 200 and body["restart_required"] == ["server.port", "server.max_connections"]
    assert orjson.dumps(body)


async def test_aggregators_switch_off_and_back_by_reload(
    fake: FakeProvider, config_file: Path, start_gateway: Any
) -> None:
    def config(aggregators: bool) -> dict[str, Any]:
        data = file_config(fake.url)
        data["providers"]["agg"] = {"plugin": "openrouter", "base_url": fake.url, "api_key": "sk-or"}
        data["models"]["via-agg"] = {"targets": [{"provider": "agg", "model": "m1"}]}
        data["features"] = {"aggregators": aggregators}
        return data

    write(config_file, config(True))
    client = await start_gateway(config_file)
    assert (
        await client.post("/v1/chat/completions", headers=AUTH, json={**BODY, "model": "via-agg"})
    ).status == 200
    write(config_file, config(False))
    assert (await reload(client))[0] == 200
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={**BODY, "model": "via-agg"})
    assert resp.status == 404 and "disabled" in (await resp.json())["error"]["message"]
    assert (
        await client.post("/v1/chat/completions", headers=AUTH, json=BODY)
    ).status == 200  # direct still serves
    write(config_file, config(True))
    assert (await reload(client))[0] == 200
    assert (
        await client.post("/v1/chat/completions", headers=AUTH, json={**BODY, "model": "via-agg"})
    ).status == 200
