"""Reports computed from the ledger and the price table.

    GET  /admin/usage?group_by=day|model|provider|key|tenant&since=&until=   totals per group
    GET  /admin/compare?model=                                               one model across providers
    POST /admin/estimate                                                     a request body -> its cost

The logic is :mod:`proxy.services.analytics` and :mod:`proxy.services.estimate`.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.dataplane.body import read_body
from proxy.edge.http import gateway, json_response, number
from proxy.errors import InvalidRequest
from proxy.plugin import Endpoint
from proxy.services import analytics, estimate
from proxy.services.analytics import Comparison, UsageReport
from proxy.services.estimate import Estimate, EstimateRequest
from proxy.store.records import RecordQuery


@operation(
    "Usage totals per day, model, provider, key or tenant, with cost breakdown and model popularity",
    response=UsageReport,
    query=(
        ("group_by", "string", "day (default), model, provider, key or tenant"),
        ("since", "number", "unix seconds, inclusive"),
        ("until", "number", "unix seconds, exclusive"),
        ("tenant", "string", "only this tenant"),
        ("key", "string", "only this key name"),
    ),
    tag="usage",
)
async def usage(request: web.Request) -> web.Response:
    q = request.query
    group_by = analytics.group_by_of(q.get("group_by"))
    since, until = number(q, "since"), number(q, "until")
    query = RecordQuery(key=q.get("key") or None, tenant=q.get("tenant") or None, since=since, until=until)
    return json_response(await analytics.usage(gateway(request), group_by, query))


@operation(
    "One model across providers: price, observed latency and error rate",
    response=Comparison,
    query=(
        ("model", "string", "the model name clients send (required)"),
        ("since", "number", "unix seconds; default: the last 7 days"),
    ),
    tag="usage",
)
async def compare(request: web.Request) -> web.Response:
    model = request.query.get("model") or ""
    if not model:
        raise InvalidRequest("'model' is required.", param="model")
    since = number(request.query, "since")
    return json_response(await analytics.compare(gateway(request), model, since))


@operation(
    "Worst-case and expected cost of a chat request (the admission reservation, and a typical answer)",
    body=EstimateRequest,
    response=Estimate,
    tag="usage",
)
async def estimate_cost(request: web.Request) -> web.Response:
    gw = gateway(request)
    snapshot = gw.snapshot
    body = await read_body(request, Endpoint.CHAT, snapshot.settings.server.max_body_bytes)
    return json_response(await estimate.estimate(gw, snapshot, body))


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/usage", usage)
    router.add_get("/compare", compare)
    router.add_post("/estimate", estimate_cost)
