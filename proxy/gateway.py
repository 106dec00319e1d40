"""The running gateway's shared state, and the per-request context the edge middleware keeps.

Handlers reach both through typed app and request keys; nothing lives in module globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from proxy.metering.alerts import Alerter
from proxy.observe.metrics import Metrics
from proxy.state.live import Live
from proxy.state.snapshot import Snapshot
from proxy.store.base import Store
from proxy.upstream.client import UpstreamClient


@dataclass(slots=True)
class Gateway:
    snapshot: Snapshot  # swapped whole on reload; a request reads it once
    store: Store
    http: aiohttp.ClientSession  # off the hot path: model sync, key checks, webhooks
    upstream: UpstreamClient  # provider calls (proxy.upstream.client)
    metrics: Metrics
    alerts: Alerter
    started_at: float = field(default_factory=time.time)
    accepting: bool = True
    live: Live | None = None  # set by the app: the watcher that keeps ``snapshot`` current


@dataclass(slots=True)
class RequestContext:
    """What the edge middleware logs and meters about one request; the spine fills it in."""

    request_id: str
    client_request_id: str | None
    started: float  # time.monotonic()
    started_at: float  # time.time()
    key: str | None = None
    tenant: str | None = None
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micro_usd: int = 0
    outcome: str | None = None
    ttfb: float | None = None
    metered: bool = False


GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
CONTEXT = web.RequestKey("context", RequestContext)
