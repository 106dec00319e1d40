"""Bounded metric labels (item 3 of issue 14): a client's model name never becomes a Prometheus label
value. Only the routing table's names (a wildcard route's pattern, not the name it matched) and ``other``
do, whatever the answer (200, 403, 404), so ``/metrics`` stays small however many names clients invent;
the access log still records the name asked for, clipped to a sane length."""

from __future__ import annotations

import asyncio
import random
import re
import string
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from support import AUTH, KEY, base_config

from proxy.testing.fake_provider import FakeProvider

NARROW_KEY = "egw-narrow-key-0123456789"
NAMES = 10_000


def random_name(rng: random.Random, i: int) -> str:
    size = 20_000 if i % 100 == 0 else rng.randrange(1, 60)
    word = "".join(rng.choices(string.ascii_letters + string.digits + "-_./:", k=size))
    return ("wild-" if i % 3 == 0 else "") + word


@pytest.fixture
async def labelled(make_gateway: Callable[..., Any], fake: FakeProvider) -> Any:
    config = base_config(fake.url)
    config["models"] = {
        "exact-model": {"targets": [{"provider": "local"}]},
        "wild-*": {"targets": [{"provider": "local"}]},
    }
    config["keys"].append({"name": "narrow", "tenant": "acme", "key": NARROW_KEY, "models": ["exact-*"]})
    return await make_gateway(config)


async def test_ten_thousand_invented_model_names_leave_metrics_bounded(labelled: Any) -> None:
    rng = random.Random(14)
    sem = asyncio.Semaphore(32)
    statuses: set[int] = set()

    url = str(labelled.make_url("/v1/chat/completions"))

    async def send(http: aiohttp.ClientSession, i: int) -> None:
        key = NARROW_KEY if i % 7 == 0 else KEY  # 403 for most of these: the key's models are narrow
        body = {"model": random_name(rng, i), "messages": [{"role": "user", "content": "hi"}]}
        async with (
            sem,
            http.post(url, data=orjson.dumps(body), headers={"Authorization": f"Bearer {key}"}) as resp,
        ):
            await resp.read()
            statuses.add(resp.status)

    # The answer's headers may quote a long name (x-efflux-upstream-model): read them whatever their size.
    async with aiohttp.ClientSession(max_line_size=1 << 16, max_field_size=1 << 16) as http:
        await asyncio.gather(*(send(http, i) for i in range(NAMES)))
    for _ in range(3):
        resp = await labelled.post(
            "/v1/chat/completions",
            json={"model": "exact-model", "messages": [{"role": "user", "content": "hi"}]},
            headers=AUTH,
        )
        assert resp.status == 200
    assert {200, 403, 404} <= statuses
    text = await (await labelled.get("/metrics")).text()
    models = set(re.findall(r'model="([^"]*)"', text))
    assert models == {"exact-model", "wild-*", "other"}
    assert len(text) < 64 * 1024  # a few dozen series, not one per name


async def test_the_access_log_records_the_name_asked_for_clipped(
    labelled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[dict[str, object]] = []
    monkeypatch.setattr("proxy.app.access", lines.append)  # the edge's access-log call
    served_name = "wild-" + "x" * 240  # within the model name's bound (256): served, logged whole
    huge_name = "wild-" + "x" * 20_000  # past it: refused at body reading, never logged whole
    async with aiohttp.ClientSession(max_line_size=1 << 16, max_field_size=1 << 16) as http:
        for name, status in ((served_name, 200), (huge_name, 400)):
            body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
            url = str(labelled.make_url("/v1/chat/completions"))
            async with http.post(url, json=body, headers=AUTH) as resp:
                assert resp.status == status
    served, refused = [f for f in lines if f["path"] == "/v1/chat/completions"]
    assert served["model"] == served_name
    assert refused["model"] is None or len(str(refused["model"])) <= 300
