"""Reports for the operator, computed from the ledger and the price table.

    GET /admin/savings?since=&until=&tenant=     cost through each provider against the cheapest direct price
    GET /admin/adoption?since=&until=            tenants, keys and requests per provider; aggregator share
    GET /admin/usage/keys?since=&tenant=         per key: requests, spend, last used

The logic is :mod:`proxy.services.savings`, :mod:`proxy.services.adoption` and
:mod:`proxy.services.key_activity`.
"""

from __future__ import annotations

import time

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_response, number
from proxy.services import adoption, key_activity, savings
from proxy.services.adoption import AdoptionReport
from proxy.services.key_activity import KeyActivityList
from proxy.services.savings import SavingsReport
from proxy.store.records import RecordQuery

RANGE = (
    ("since", "number", "unix seconds, inclusive"),
    ("until", "number", "unix seconds, exclusive"),
    ("tenant", "string", "only this tenant"),
)


def _query(request: web.Request) -> RecordQuery:
    q = request.query
    return RecordQuery(tenant=q.get("tenant") or None, since=number(q, "since"), until=number(q, "until"))


@operation(
    "What traffic cost through each provider against the cheapest direct price for the same model",
    response=SavingsReport,
    query=RANGE,
    tag="usage",
)
async def savings_report(request: web.Request) -> web.Response:
    return json_response(await savings.savings(gateway(request), _query(request)))


@operation(
    "Provider adoption: tenants, keys and requests per provider, and the aggregator vs direct share",
    response=AdoptionReport,
    query=RANGE,
    tag="usage",
)
async def adoption_report(request: web.Request) -> web.Response:
    return json_response(await adoption.adoption(gateway(request), _query(request)))


@operation(
    "Per virtual key: requests, spend and last use",
    response=KeyActivityList,
    query=(
        ("since", "number", "unix seconds (default: 30 days ago)"),
        ("tenant", "string", "only this tenant's keys"),
    ),
    tag="keys",
)
async def keys_activity(request: web.Request) -> web.Response:
    since = number(request.query, "since") or time.time() - 30 * 86400
    tenant = request.query.get("tenant") or None
    return json_response(await key_activity.activity(gateway(request), since, tenant))


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/savings", savings_report)
    router.add_get("/adoption", adoption_report)
    router.add_get("/usage/keys", keys_activity)
