"""Usage: the ledger, ``GET /admin/usage/records`` (PRODUCT section 11)."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from proxy.admin.common import gateway, json_response, limit, number
from proxy.ledger import RecordQuery


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
    page = await gateway(request).store.records(query)
    return json_response(
        {"data": [dataclasses.asdict(r) for r in page.data], "next_cursor": page.next_cursor}
    )


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/usage/records", records)
