"""Prometheus metrics, one registry per app (so several gateways can live in one process, as in tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True, slots=True)
class RouteMetrics:
    """The labelled children one (model, provider) pair updates on every request, looked up once."""

    prompt: Any
    completion: Any
    cached: Any
    cost: Any
    latency: Any
    ttfb: Any


class Metrics:
    def __init__(self) -> None:
        # ``labels()`` hashes and validates its arguments on every call; the data plane calls it several
        # times per request, so the children are kept here (bounded by the routing table's size).
        self._routes: dict[tuple[str, str], RouteMetrics] = {}
        self._requests: dict[tuple[str, str, str, int], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "efflux_requests", "Requests answered", ["endpoint", "model", "provider", "status"], registry=r
        )
        self.tokens = Counter("efflux_tokens", "Tokens metered", ["model", "provider", "kind"], registry=r)
        self.cost = Counter(
            "efflux_cost_micro_usd", "Cost metered (micro-USD)", ["model", "provider"], registry=r
        )
        self.latency = Histogram(
            "efflux_request_duration_seconds",
            "Request latency",
            ["model", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "efflux_time_to_first_byte_seconds",
            "Time to the first byte sent to the client",
            ["model", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "efflux_upstream_errors", "Failed upstream attempts", ["provider", "kind"], registry=r
        )
        self.store_errors = Counter("efflux_store_errors", "Store calls that failed", ["op"], registry=r)
        self.in_flight = Gauge("efflux_requests_in_flight", "Requests being served", registry=r)
        self.alerts = Counter("efflux_alerts", "Alerts raised", ["type"], registry=r)
        # Reliability (proxy.breaker, proxy.retry, proxy.overload)
        self.breaker_state = Gauge(
            "efflux_breaker_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open",
            ["provider", "model"],
            registry=r,
        )
        self.retries_denied = Counter(
            "efflux_retries_denied", "Fallback attempts refused by the retry budget", registry=r
        )
        self.overloaded = Counter(
            "efflux_overloaded", "Requests refused with 503 past server.max_concurrency", registry=r
        )
        # Model sync (proxy.sync) and config reloads (proxy.reload): counted on the replica that ran them.
        self.sync_runs = Counter("efflux_sync_runs", "Catalogue syncs", ["provider", "result"], registry=r)
        self.sync_changes = Counter(
            "efflux_sync_changes", "Models added/changed/removed by syncs", ["provider", "kind"], registry=r
        )
        self.sync_models = Gauge(
            "efflux_sync_models", "Models in the last good catalogue", ["provider"], registry=r
        )
        self.sync_last_success = Gauge(
            "efflux_sync_last_success_timestamp_seconds",
            "When the last sync succeeded",
            ["provider"],
            registry=r,
        )
        self.reloads = Counter("efflux_config_reloads", "Config reloads", ["result"], registry=r)

    def route(self, model: str, provider: str) -> RouteMetrics:
        found = self._routes.get((model, provider))
        if found is None:
            found = self._routes[(model, provider)] = RouteMetrics(
                self.tokens.labels(model, provider, "prompt"),
                self.tokens.labels(model, provider, "completion"),
                self.tokens.labels(model, provider, "cached"),
                self.cost.labels(model, provider),
                self.latency.labels(model, provider),
                self.ttfb.labels(model, provider),
            )
        return found

    def request(self, endpoint: str, model: str, provider: str, status: int) -> Any:
        key = (endpoint, model, provider, status)
        found = self._requests.get(key)
        if found is None:
            found = self._requests[key] = self.requests.labels(endpoint, model, provider, str(status))
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
