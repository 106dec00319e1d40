"""The running gateway's shared state, and the key of the per-request context the edge middleware keeps
(:class:`proxy.metering.context.RequestContext`).

Handlers reach both through typed app and request keys; nothing lives in module globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from proxy.ledger import PostgresLedger, Writer
from proxy.metering.alerts import Alerter
from proxy.metering.context import RequestContext
from proxy.metering.unpriced import UnpricedModels
from proxy.observe.metrics import Metrics
from proxy.observe.rejections import Rejections
from proxy.state.live import Live
from proxy.state.snapshot import Snapshot
from proxy.store.base import Store
from proxy.tenancy.lookup import KeyLookup
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
    keys: KeyLookup = field(default_factory=KeyLookup)  # keys not in ``snapshot`` yet, found in the store
    unpriced: UnpricedModels = field(default_factory=UnpricedModels)  # models served without a price
    rejections: Rejections = field(default_factory=Rejections)  # refused before admission (the dashboard)
    ledger: PostgresLedger | None = None  # ledger: postgres (proxy/services/ledger.py opens it)
    ledger_writer: Writer | None = None


GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
CONTEXT = web.RequestKey("context", RequestContext)
