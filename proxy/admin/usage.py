"""Usage: the ledger, ``GET /admin/usage/records``."""

from __future__ import annotations

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_response, limit, number
from proxy.services import analytics
from proxy.store.records import RecordPage, RecordQuery


@operation(
    "Ledger records, newest last, filtered and paginated",
    response=RecordPage,
    query=(
        ("request_id", "string", "the gateway's request id or the client's x-request-id"),
        ("key", "string", "virtual key name"),
        ("tenant", "string", "tenant name"),
        ("since", "number", "unix seconds, inclusive"),
        ("until", "number", "unix seconds, exclusive"),
        ("limit", "integer", "1..1000, default 100"),
        ("cursor", "string", "next_cursor of the previous page"),
    ),
    tag="usage",
)
async def records(request: web.Request) -> web.Response:
    q = request.query
    query = RecordQuery(
        request_id=q.get("request_id") or None,
        key=q.get("key") or None,
        tenant=q.get("tenant") or None,
        since=number(q, "since"),
        until=number(q, "until"),
        limit=limit(q),
        cursor=q.get("cursor") or None,
    )
    return json_response(await analytics.records_page(gateway(request), query))


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/usage/records", records)
