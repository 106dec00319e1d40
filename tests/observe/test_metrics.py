"""/metrics after real traffic: the data plane's series count every request, token and cent once."""

from __future__ import annotations

import re
from typing import Any

from support import AUTH, base_config

from proxy.observe.metrics import Distribution
from proxy.testing.fake_provider import FakeProvider


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


async def test_requests_tokens_cost_and_latency_are_counted(make_gateway: Any, fake: FakeProvider) -> None:
    config = base_config(fake.url)
    config["models"]["m1"] = {"targets": [{"provider": "local"}]}  # labels are route names (not "*")
    gateway = await make_gateway(config)
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        assert (await gateway.post("/v1/chat/completions", json=body, headers=AUTH)).status == 200
    text = await (await gateway.get("/metrics")).text()
    labels = {"model": "m1", "provider": "local"}
    assert sample(text, "efflux_requests_total", status="200", **labels) == 3
    assert sample(text, "efflux_tokens_total", kind="completion", **labels) == 18  # 6 per fake answer
    assert sample(text, "efflux_cost_micro_usd_total", **labels) > 0
    assert sample(text, "efflux_request_duration_seconds_count", **labels) == 3
    assert sample(text, "efflux_request_duration_seconds_bucket", le="+Inf", **labels) == 3
    assert sample(text, "efflux_requests_in_flight") == 1  # the scrape itself
    # three calls, one provider connection (kept alive), idle in the pool now
    origin = sample_labels(text, "efflux_upstream_connections_opened_total")["origin"]
    assert origin.startswith("http://127.0.0.1:")
    assert sample(text, "efflux_upstream_connections_opened_total", origin=origin) == 1
    assert sample(text, "efflux_upstream_connections_idle", origin=origin) == 1


def sample_labels(text: str, name: str) -> dict[str, str]:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
    raise AssertionError(f"no sample {name}")


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    d = Distribution()
    for value in (0.005, 0.007, 3.0, 500.0):
        d.observe(value)
    buckets = dict(d.cumulative())
    assert buckets["0.005"] == 1  # le: a value equal to a bound falls in that bucket
    assert buckets["0.01"] == 2
    assert buckets["5"] == 3
    assert buckets["+Inf"] == 4
    assert d.sum == 0.005 + 0.007 + 3.0 + 500.0
