"""Requests served without a price (``pricing.unknown: allow``): what the operator sees of them.

Each such request counts in ``efflux_unpriced_requests_total{provider}`` (a label per configured
provider, never the model a client named). The first one of each (provider, model) raises the operator
event ``unpriced_model`` (logged; posted to ``alerts.webhook`` when ``alerts.on`` lists it, once across
replicas per ``REPEAT_AFTER``), once per process: at most :data:`MAX_ALERTED` models are remembered, then
one last alert says that more go unannounced.
"""

from __future__ import annotations

import time

from proxy.metering.alerts import Alerter
from proxy.observe.metrics import Metrics

MAX_ALERTED = 1000


class UnpricedModels:
    def __init__(self, limit: int = MAX_ALERTED) -> None:
        self.limit = limit
        self.alerted: set[tuple[str, str]] = set()
        self.full = False  # the limit was reached and said so

    def served(self, metrics: Metrics, alerter: Alerter, provider: str, model: str) -> None:
        """Count one request served unpriced; alert the first time this (provider, model) is."""
        metrics.unpriced.labels(provider).inc()
        key = (provider, model)
        if key in self.alerted or self.full:
            return
        alert: dict[str, object] = {
            "type": "unpriced",
            "provider": provider,
            "model": model,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if len(self.alerted) >= self.limit:
            self.full = True
            note = f"more than {self.limit} unpriced models: no more alerts"
            alert = {**alert, "model": None, "note": note}
        else:
            self.alerted.add(key)
        metrics.alerts.labels("unpriced").inc()
        alerter.operator("unpriced_model", f"unpriced_model/{provider}/{alert['model']}", alert)
