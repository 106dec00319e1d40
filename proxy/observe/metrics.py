"""Prometheus metrics, one registry per app (so several gateways can live in one process, as in tests).

Label values are bounded: a model label is a routing-table name (an exact route, or a wildcard route's
pattern) or :data:`OTHER`, set by the edge and settlement from the request's route, never the client's
string; providers and origins come from the config.

Spend and rejections per tenant and key (:meth:`Metrics.spend`, :meth:`Metrics.rejection`) take their
labels from the config and the store (never the client), and each label has a cap on distinct values
(:class:`LabelCap`): past it, a new tenant, key or reason is counted as :data:`OTHER`.

The data plane's own series (requests, tokens, cost, latency, time to first byte, in flight) are updated
several times per request. prometheus_client's children take a lock and validate on every update; on one
event loop neither is needed, so those series are plain numbers here, turned into metric families only
when /metrics is scraped (:class:`_DataPlane`). Everything else uses prometheus_client as it is.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# The model label of a request whose model name is not in the routing table (an unknown or refused name):
# label values come from the routing table only, so a client cannot grow /metrics by inventing names.
OTHER = "other"
MAX_TENANTS = 100  # distinct tenant label values of the per-tenant series; the rest are OTHER
MAX_KEYS = 500  # distinct key label values
MAX_REASONS = 50  # distinct rejection reasons (error codes: a closed set, capped all the same)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Count:
    """A counter (or gauge) value, updated from the event loop only: no lock."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class Distribution:
    """A histogram: a count per bucket (made cumulative when scraped) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, count in zip((*_LATENCY_BUCKETS, "+Inf"), self.counts, strict=True):
            total += count
            out.append((str(bound), float(total)))
        return out


@dataclass(frozen=True, slots=True)
class RouteMetrics:
    """The series one (model, provider) pair updates on every request, looked up once."""

    prompt: Count
    completion: Count
    cached: Count
    cost: Count
    latency: Distribution
    ttfb: Distribution


class ConnectionPool(Protocol):
    """What a scrape reads of the provider client (``proxy.upstream.client.UpstreamClient``): plain
    counts, so the metrics need not know the client."""

    @property
    def opened(self) -> Mapping[str, int]:
        """Origin URL -> connections opened so far."""

    def idle_by_origin(self) -> Mapping[str, int]:
        """Origin URL -> idle pooled connections now."""


class LabelCap:
    """The first ``cap`` distinct values of a label keep their name; later ones become :data:`OTHER`."""

    __slots__ = ("cap", "seen")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return OTHER
        self.seen.add(value)
        return value


@dataclass(slots=True)
class LedgerWriter:
    """What the ledger's background writer reports (:meth:`report`): how far behind it is. None until a
    writer reports; the ``ledger_lag`` operator alert and the two gauges read it."""

    lag_seconds: float | None = None  # age of the oldest record not yet written
    backlog: int | None = None  # records waiting to be written

    def report(self, lag_seconds: float, backlog: int) -> None:
        self.lag_seconds, self.backlog = lag_seconds, backlog


class _DataPlane(Collector):
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RouteMetrics] = {}
        self.requests: dict[tuple[str, str, str, int], Count] = {}
        self.in_flight = Count()
        self.spend: dict[tuple[str, str], Count] = {}  # (tenant, key) -> micro-USD
        self.rejections: dict[tuple[str, str, str], Count] = {}  # (tenant, key, reason)
        self.ledger = LedgerWriter()
        self.upstream: ConnectionPool | None = None  # the provider client, read at scrape time

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "efflux_requests", "Requests answered", labels=["endpoint", "model", "provider", "status"]
        )
        for (endpoint, model, provider, status), count in list(self.requests.items()):
            requests.add_metric([endpoint, model, provider, str(status)], count.value)
        tokens = CounterMetricFamily("efflux_tokens", "Tokens metered", labels=["model", "provider", "kind"])
        cost = CounterMetricFamily(
            "efflux_cost_micro_usd", "Cost metered (micro-USD)", labels=["model", "provider"]
        )
        latency = HistogramMetricFamily(
            "efflux_request_duration_seconds", "Request latency", labels=["model", "provider"]
        )
        ttfb = HistogramMetricFamily(
            "efflux_time_to_first_byte_seconds",
            "Time to the first byte sent to the client",
            labels=["model", "provider"],
        )
        for (model, provider), m in list(self.routes.items()):
            tokens.add_metric([model, provider, "prompt"], m.prompt.value)
            tokens.add_metric([model, provider, "completion"], m.completion.value)
            tokens.add_metric([model, provider, "cached"], m.cached.value)
            cost.add_metric([model, provider], m.cost.value)
            latency.add_metric([model, provider], m.latency.cumulative(), m.latency.sum)
            ttfb.add_metric([model, provider], m.ttfb.cumulative(), m.ttfb.sum)
        yield from (requests, tokens, cost, latency, ttfb)
        yield GaugeMetricFamily("efflux_requests_in_flight", "Requests being served", self.in_flight.value)
        spend = CounterMetricFamily(
            "efflux_spend_micro_usd", "Spend metered per tenant and key (micro-USD)", labels=["tenant", "key"]
        )
        for (tenant, key), count in list(self.spend.items()):
            spend.add_metric([tenant, key], count.value)
        rejections = CounterMetricFamily(
            "efflux_rejections",
            "Requests refused before any provider was called, by error code",
            labels=["tenant", "key", "reason"],
        )
        for (tenant, key, reason), count in list(self.rejections.items()):
            rejections.add_metric([tenant, key, reason], count.value)
        yield from (spend, rejections)
        if self.ledger.lag_seconds is not None:
            yield GaugeMetricFamily(
                "efflux_ledger_writer_lag_seconds",
                "Age of the oldest usage record not yet in the ledger database",
                self.ledger.lag_seconds,
            )
        if self.ledger.backlog is not None:
            yield GaugeMetricFamily(
                "efflux_ledger_writer_backlog",
                "Usage records waiting for the ledger database",
                self.ledger.backlog,
            )
        if self.upstream is not None:
            # Connection churn: keep-alive that works opens few; a provider closing every connection
            # shows here as a count growing with the requests (each one a new TCP and TLS handshake).
            opened = CounterMetricFamily(
                "efflux_upstream_connections_opened", "Connections opened to providers", labels=["origin"]
            )
            for origin, n in list(self.upstream.opened.items()):
                opened.add_metric([origin], n)
            idle = GaugeMetricFamily(
                "efflux_upstream_connections_idle", "Idle pooled connections to providers", labels=["origin"]
            )
            for origin, n in self.upstream.idle_by_origin().items():
                idle.add_metric([origin], n)
            yield from (opened, idle)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._data = _DataPlane()
        r.register(self._data)
        self.in_flight = self._data.in_flight
        self.ledger_writer = self._data.ledger  # the ledger writer reports here (LedgerWriter.report)
        self._tenants, self._keys, self._reasons = (
            LabelCap(MAX_TENANTS),
            LabelCap(MAX_KEYS),
            LabelCap(MAX_REASONS),
        )
        self.upstream_errors = Counter(
            "efflux_upstream_errors", "Failed upstream attempts", ["provider", "kind"], registry=r
        )
        self.store_errors = Counter("efflux_store_errors", "Store calls that failed", ["op"], registry=r)
        self.alerts = Counter("efflux_alerts", "Alerts raised", ["type"], registry=r)
        # Reliability (proxy.routing.breaker, proxy.routing.retry, proxy.edge.overload)
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
        # Model sync (proxy.services.sync) and config reloads (proxy.services.reload): counted on the
        # replica that ran them.
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
        found = self._data.routes.get((model, provider))
        if found is None:
            found = self._data.routes[(model, provider)] = RouteMetrics(
                Count(), Count(), Count(), Count(), Distribution(), Distribution()
            )
        return found

    def request(self, endpoint: str, model: str, provider: str, status: int) -> Count:
        key = (endpoint, model, provider, status)
        found = self._data.requests.get(key)
        if found is None:
            found = self._data.requests[key] = Count()
        return found

    def spend(self, tenant: str, key: str) -> Count:
        """The spend counter of a tenant and key (labels past their caps: ``other``)."""
        labels = (self._tenants(tenant), self._keys(key))
        found = self._data.spend.get(labels)
        if found is None:
            found = self._data.spend[labels] = Count()
        return found

    def rejection(self, tenant: str, key: str, reason: str) -> Count:
        """The counter of requests refused before dispatch ("" tenant and key: not authenticated)."""
        labels = (self._tenants(tenant), self._keys(key), self._reasons(reason))
        found = self._data.rejections.get(labels)
        if found is None:
            found = self._data.rejections[labels] = Count()
        return found

    def watch_upstream(self, client: ConnectionPool) -> None:
        self._data.upstream = client

    def render(self) -> bytes:
        return generate_latest(self.registry)
