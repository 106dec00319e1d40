"""The shipped Prometheus rules and Grafana dashboard name only metrics the gateway exports: every
``efflux_*`` name in them is in /metrics after some traffic (and a ledger writer's report)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support import AUTH, base_config

from proxy.gateway import GATEWAY
from proxy.testing.fake_provider import Behaviour, FakeProvider

CONFIG = Path(__file__).resolve().parents[2] / "config"
NAME = re.compile(r"\befflux_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((CONFIG / "prometheus-rules.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = orjson.loads((CONFIG / "grafana-dashboard.json").read_bytes())
    return [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]


def exported(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def test_the_rules_cover_the_operator_concerns() -> None:
    alerts = {rule["alert"]: rule for rule in rules()}
    for name in (
        "EffluxProviderDown",
        "EffluxHighErrorRate",
        "EffluxBudgetExhausted",
        "EffluxLedgerLag",
        "EffluxMeteringUnavailable",
        "EffluxHighLatency",
    ):
        assert name in alerts
        assert NAME.search(alerts[name]["expr"]) and alerts[name]["labels"]["severity"]


async def test_every_metric_named_is_exported(make_gateway: Any, fake: FakeProvider) -> None:
    cfg = base_config(fake.url)
    cfg["providers"]["local"]["breaker"] = {"failures": 1, "cooldown": "60s"}
    client = await make_gateway(cfg)
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json=body, headers=AUTH)).status == 200
    fake.script("dead", Behaviour.json(503, {"error": {"message": "down", "type": "server_error"}}))
    assert (
        await client.post("/v1/chat/completions", json={**body, "model": "dead"}, headers=AUTH)
    ).status == 502
    assert (await client.post("/v1/chat/completions", json=body)).status == 401
    client.app[GATEWAY].metrics.ledger_writer.report(1.5, 10)  # what the ledger's writer reports
    names = exported(await (await client.get("/metrics")).text())

    named = {name for expr in [r["expr"] for r in rules()] + dashboard_exprs() for name in NAME.findall(expr)}
    assert len(named) >= 20
    assert named - names == set()
